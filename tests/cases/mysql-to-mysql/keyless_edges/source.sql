-- binary strings at their edges (BINARY(n) padding, trailing 0x00, empty) and other
-- values keyless matching must find again, in a table without a key and one with
CREATE TABLE kb (a int, b binary(4), vb varbinary(4), bl blob, j json, f float, d double, dc decimal(10,3), s varchar(10), dt datetime(3));
CREATE TABLE pb (id int PRIMARY KEY, b binary(4), vb varbinary(4), bl blob, j json);
CREATE TABLE bk (k binary(4) PRIMARY KEY, v int);
INSERT INTO bk VALUES (X'61', 1), (X'6200', 2), (X'', 3);
INSERT INTO kb VALUES
 (1, X'6566', X'6500', X'00', '{"a": 1, "b": [1.5, "x"]}', 1.1, 2.2, 1.5, 'x ', '2024-01-02 03:04:05.678'),
 (2, X'', X'', X'', '[]', 0, -0.5, 0, '', '1970-01-01 00:00:00'),
 (3, X'00000000', X'00', X'0000', 'null', -3.5, 1e300, -999999.999, 'é', '9999-12-31 23:59:59.999'),
 (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (5, X'FFFFFFFF', X'FF00FF00', X'FF00', '"s"', 100.25, 1.5, 0.001, 'a', '2000-02-29 00:00:00'),
 (5, X'FFFFFFFF', X'FF00FF00', X'FF00', '"s"', 100.25, 1.5, 0.001, 'a', '2000-02-29 00:00:00');
INSERT INTO pb VALUES (1, X'6566', X'6500', X'00', '{"k": null}'), (2, X'', X'', X'', '0'), (3, NULL, NULL, NULL, NULL), (4, X'00', X'00', X'00', '[{}]');
-- rows equal under the column's collation (case, accents, trailing spaces) but distinct
CREATE TABLE kc (s varchar(10), n int);
INSERT INTO kc VALUES ('a', 1), ('A', 1), ('a ', 1), ('á', 1);
CREATE TABLE kh (c char(3), n int);
INSERT INTO kh VALUES ('a', 1), ('A', 1);
CREATE TABLE kl (l varchar(10) CHARACTER SET latin1, c char(3) CHARACTER SET latin1, n int);
INSERT INTO kl VALUES ('café', 'é', 1), ('Café', 'É', 1);
-- ferry:stream
INSERT INTO kb VALUES (6, X'61', X'6100', X'', '{"b": [1, 2.5]}', 0.1, 0.1, 0.1, 'b', '2024-06-01 00:00:00');
INSERT INTO pb VALUES (5, X'61', X'6100', X'', '1');
INSERT INTO bk VALUES (X'63', 4);
UPDATE bk SET v = v + 10;
DELETE FROM bk WHERE v = 11;
UPDATE kb SET a = a + 10;
UPDATE kb SET vb = b, bl = vb WHERE a IN (11, 12, 15);
UPDATE pb SET b = vb, vb = b;
UPDATE pb SET id = id + 10 WHERE id > 3;
DELETE FROM kb WHERE a IN (13, 16);
DELETE FROM kb WHERE a = 15 LIMIT 1;
DELETE FROM pb WHERE id IN (2, 15);
UPDATE kc SET n = 2 WHERE BINARY s = 'A';
UPDATE kc SET n = 3 WHERE BINARY s = 'a ';
UPDATE kc SET n = 4 WHERE BINARY s = 'á';
UPDATE kh SET n = 2 WHERE BINARY c = 'A';
UPDATE kl SET n = 2 WHERE l = CONVERT('Café' USING latin1) COLLATE latin1_bin;
