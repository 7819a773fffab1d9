-- A small shop: customers, products, orders and order lines, with the usual types
-- (money as DECIMAL, timestamps, JSON, ENUM, a latin1 column) and foreign keys.
-- Rows are generated with MariaDB's sequence engine (seq_1_to_N).
CREATE TABLE customers (
  id int AUTO_INCREMENT PRIMARY KEY,
  email varchar(200) NOT NULL UNIQUE,
  name varchar(100) NOT NULL,
  city varchar(60) CHARACTER SET latin1,
  tier enum('basic','silver','gold') NOT NULL DEFAULT 'basic',
  created_at datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  KEY idx_city (city)
) COMMENT 'registered customers';
CREATE TABLE products (
  id int AUTO_INCREMENT PRIMARY KEY,
  sku char(12) NOT NULL UNIQUE,
  title varchar(200) NOT NULL,
  price decimal(10,2) NOT NULL CHECK (price >= 0),
  attributes json,
  weight_kg float
);
CREATE TABLE orders (
  id bigint unsigned AUTO_INCREMENT PRIMARY KEY,
  customer_id int NOT NULL,
  status enum('new','paid','shipped','cancelled') NOT NULL,
  placed_at timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  note text,
  CONSTRAINT fk_orders_customer FOREIGN KEY (customer_id) REFERENCES customers(id),
  KEY idx_placed (placed_at)
);
CREATE TABLE order_items (
  order_id bigint unsigned NOT NULL,
  line smallint NOT NULL,
  product_id int NOT NULL,
  qty int NOT NULL,
  unit_price decimal(10,2) NOT NULL,
  amount decimal(12,2) AS (qty * unit_price) STORED,
  PRIMARY KEY (order_id, line),
  CONSTRAINT fk_items_order FOREIGN KEY (order_id) REFERENCES orders(id),
  CONSTRAINT fk_items_product FOREIGN KEY (product_id) REFERENCES products(id)
);
CREATE TABLE audit_log (at datetime NOT NULL, message varchar(255));

INSERT INTO customers (email, name, city, tier, created_at)
SELECT CONCAT('user', seq, '@example.com'), CONCAT('Customer ', seq),
       ELT(1 + seq % 5, 'Zürich', 'São Paulo', 'Kraków', 'Reykjavík', 'Lyon'),
       ELT(1 + seq % 3, 'basic', 'silver', 'gold'),
       TIMESTAMP('2020-01-01') + INTERVAL seq MINUTE + INTERVAL (seq % 1000) MICROSECOND
FROM seq_1_to_20000;
INSERT INTO products (sku, title, price, attributes, weight_kg)
SELECT CONCAT('SKU', LPAD(seq, 9, '0')), CONCAT('Product "', seq, '" — ünïcode 📦'),
       (seq % 500) + 0.99, JSON_OBJECT('color', ELT(1 + seq % 3, 'red', 'green', 'blue'), 'size', seq % 10),
       seq / 7
FROM seq_1_to_2000;
INSERT INTO orders (customer_id, status, placed_at, note)
SELECT 1 + seq % 20000, ELT(1 + seq % 4, 'new', 'paid', 'shipped', 'cancelled'),
       TIMESTAMP('2024-01-01') + INTERVAL seq SECOND,
       IF(seq % 10 = 0, NULL, IF(seq % 7 = 0, '', CONCAT('deliver\tto door\n', seq)))
FROM seq_1_to_100000;
INSERT INTO order_items (order_id, line, product_id, qty, unit_price)
SELECT o.seq, l.seq, 1 + (o.seq * l.seq) % 2000, 1 + l.seq, ((o.seq + l.seq) % 500) + 0.99
FROM seq_1_to_100000 o JOIN seq_1_to_3 l;
INSERT INTO audit_log SELECT TIMESTAMP('2024-01-01') + INTERVAL seq HOUR, CONCAT('event ', seq) FROM seq_1_to_1000;
