-- binary strings at their edges and json/jsonb, floats, numerics, text in a table
-- without a key (matched on every column on the target) and one with
CREATE TABLE kb (a int, by bytea, j json, jb jsonb, r real, d double precision, n numeric(10,3), t text, ts timestamptz);
CREATE TABLE pb (id int PRIMARY KEY, by bytea, j json, jb jsonb);
INSERT INTO kb VALUES
 (1, '\x6566', '{"a": 1,  "b": [1.50, "x"]}', '{"a": 1, "b": [1.50, "x"]}', 1.1, 2.2, 1.5, 'x ', '2024-01-02 03:04:05.678+02'),
 (2, '\x', '[]', '[]', 0, -0.5, 0, '', '1970-01-01 00:00:01+00'),
 (3, '\x00000000', 'null', 'null', -3.5, 1e300, -999999.999, 'é', '2038-01-19 03:14:07.999+00'),
 (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (5, '\xff00', '"s"', '"s"', 100.25, 1.5, 0.001, 'a', '2000-02-29 00:00:00+00'),
 (5, '\xff00', '"s"', '"s"', 100.25, 1.5, 0.001, 'a', '2000-02-29 00:00:00+00');
INSERT INTO pb VALUES (1, '\x6566', '{"k":  null}', '{"k": null}'), (2, '\x', '0', '0'), (3, NULL, NULL, NULL), (4, '\x00', '[{}]', '[{}]');
-- rows distinct on the source, equal under the target column's collation
CREATE TABLE kc (s text, m int);
INSERT INTO kc VALUES ('a', 1), ('A', 1), ('a ', 1);
CREATE TABLE kh (c char(3), n int);
INSERT INTO kh VALUES ('a', 1), ('A', 1);
-- ferry:stream
INSERT INTO kb VALUES (6, '\x6100', '{"b": [1, 2.5]}', '{"b": [1, 2.5]}', 0.1, 0.1, 0.1, 'b', '2024-06-01 00:00:00+00');
INSERT INTO pb VALUES (5, '\x6100', '1', '1');
UPDATE kb SET a = a + 10;
UPDATE kb SET j = jb::json, by = by || '\x00'::bytea WHERE a IN (11, 12, 15);
UPDATE pb SET j = '{"u": 1}', jb = '{"u": [1, 2]}', by = by || '\x00'::bytea;
UPDATE pb SET id = id + 10 WHERE id > 3;
DELETE FROM kb WHERE a IN (13, 16);
DELETE FROM kb WHERE ctid = (SELECT min(ctid) FROM kb WHERE a = 15);
DELETE FROM pb WHERE id IN (2, 15);
UPDATE kc SET m = 2 WHERE s = 'A';
UPDATE kc SET m = 3 WHERE s = 'a ';
UPDATE kh SET n = 2 WHERE c = 'A';
