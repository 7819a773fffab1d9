CREATE TABLE customers (
  id int AUTO_INCREMENT PRIMARY KEY,
  name varchar(100) NOT NULL,
  email varchar(200) UNIQUE,
  note mediumtext,
  created datetime(6) DEFAULT '2024-01-02 03:04:05.123456',
  balance decimal(12,2) DEFAULT 0.00,
  flags bit(5),
  vip tinyint(1) DEFAULT 0,
  kind enum('a','b','c') DEFAULT 'a',
  tags set('x','y','z'),
  doc json,
  latin varchar(20) CHARACTER SET latin1,
  KEY idx_name (name)
) COMMENT 'the customers';
CREATE TABLE orders (
  id bigint unsigned PRIMARY KEY,
  customer_id int NOT NULL,
  total decimal(65,30),
  f float, d double,
  t time(3), dt date, y year,
  ts timestamp(6) NULL,
  bin varbinary(20), blobby longblob,
  tiny tinyint, tiny_u tinyint unsigned, small_u smallint unsigned, med mediumint, med_u mediumint unsigned,
  int_u int unsigned, big bigint,
  total2 decimal(65,30) AS (total * 2) STORED,
  CONSTRAINT fk_c FOREIGN KEY (customer_id) REFERENCES customers(id),
  CHECK (total >= 0)
);
CREATE TABLE nokey (a int, b varchar(10));
-- ferry:stream
-- ferry:stream
INSERT INTO customers (name,email,note,balance,flags,vip,kind,tags,doc,latin) VALUES
 ('Ann','ann@x','tab\there\nnewline \\ back "quote" it''s 😀 \r cr',10.5,b'10101',1,'b','x,z','{"b":1,"a":[1,2.50,"x"]}','café'),
 ('Bob',NULL,'',0,NULL,0,'c','',NULL,NULL),
 ('Cy','cy@x',NULL,-3.25,b'0',0,'a',NULL,'[]','naïve'),
 ('Dee','d@x',REPEAT('long ',20000),99999999.99,b'11111',1,'c','x,y,z','{"k":null}','ÀÉÎ');
INSERT INTO orders (id,customer_id,total,f,d,t,dt,y,ts,bin,blobby,tiny,tiny_u,small_u,med,med_u,int_u,big) VALUES
 (18446744073709551615, 1, 12345678901234567890123456789012345.123456789012345678901234567890, 16777217, 1.7976931348623157e308, '-838:59:59.000', '1000-01-01', 2155, '2038-01-19 03:14:07.999999', 0x00ff10, REPEAT('ab',1500000), -128, 255, 65535, -8388608, 16777215, 4294967295, -9223372036854775808),
 (1, 2, 0, -1.5, 0.1, '-00:00:00.5', '9999-12-31', 1901, '1970-01-01 00:00:01', '', NULL, 127, 0, 0, 8388607, 0, 0, 9223372036854775807),
 (2, 3, NULL, NULL, 2.2250738585072014e-308, '838:59:59.999', NULL, NULL, NULL, NULL, x'', NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (0, 4, 1e-30, 3.4028234e38, -0.0, '24:00:00', '2024-02-29', 2000, '2024-02-29 12:00:00', 0x00, 0x0a09005c, 0, 1, 2, 3, 4, 5, 6);
INSERT INTO nokey VALUES (1,'x'),(1,'x'),(NULL,NULL),(NULL,''),(2,'y');
-- through the stream these exercise updates (full row images) and deletes as well
UPDATE customers SET vip = 1 - vip; UPDATE customers SET vip = 1 - vip;
UPDATE orders SET f = -f; UPDATE orders SET f = -f;
INSERT INTO orders (id, customer_id) VALUES (7, 1); DELETE FROM orders WHERE id = 7;
INSERT INTO nokey VALUES (3, 'z'); DELETE FROM nokey WHERE a = 3;
-- through the stream these exercise updates (full row images) and deletes as well
UPDATE customers SET vip = 1 - vip; UPDATE customers SET vip = 1 - vip;
UPDATE orders SET f = -f; UPDATE orders SET f = -f;
INSERT INTO orders (id, customer_id) VALUES (7, 1); DELETE FROM orders WHERE id = 7;
INSERT INTO nokey VALUES (3, 'z'); DELETE FROM nokey WHERE a = 3;
