-- types without a usable `=` (json, xml, point and the other geometric types, arrays
-- of them) and binary strings at their edges, in a table without a key and one with
CREATE TABLE kb (a int, by bytea, j json, jb jsonb, x xml, p point, bx box, ln line, ls lseg, pa path, pg polygon, c circle, ja json[], r real, d double precision, n numeric, t text, iv interval);
CREATE TABLE pb (id int PRIMARY KEY, by bytea, j json, x xml, p point);
INSERT INTO kb VALUES
 (1, '\x6566', '{"a": 1,  "b": [1.50, "x"]}', '{"a": 1, "b": [1.50, "x"]}', '<r a="1">t</r>', '(1,2)', '((2,2),(0,0))', '{1,-1,0}', '[(0,0),(1,1)]', '((0,0),(1,1),(2,0))', '((0,0),(1,1),(1,0))', '<(0,0),1>', ARRAY['{"a":1}'::json], 1.1, 2.2, 1.50, 'x ', '1 day'),
 (2, '\x', '[]', '[]', '', '(0,0)', '((0,0),(0,0))', '{0,1,0}', '[(0,0),(0,0)]', '[(0,0)]', '((0,0))', '<(0,0),0>', '{}', 0, -0.5, 0, '', '24 hours'),
 (3, '\x00000000', 'null', 'null', '<a/>', '(-1.5,1e300)', '((1,1),(1,1))', '{1,0,-3}', '[(1,2),(3,4)]', '[(0,0),(1,1)]', '((1,1),(2,2),(3,1))', '<(1,1),2.5>', ARRAY[NULL::json], -3.5, 1e300, -999999.999, 'é', '-1 mons'),
 (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (5, '\xff00', '"s"', '"s"', 'text', '(1,2)', '((1,1),(0,0))', '{1,-1,0}', '[(0,0),(1,1)]', '((0,0),(1,1),(2,0))', '((0,0),(1,1),(1,0))', '<(0,0),1>', '{}', 100.25, 1.5, 0.001, 'a', '00:00:00'),
 (5, '\xff00', '"s"', '"s"', 'text', '(1,2)', '((1,1),(0,0))', '{1,-1,0}', '[(0,0),(1,1)]', '((0,0),(1,1),(2,0))', '((0,0),(1,1),(1,0))', '<(0,0),1>', '{}', 100.25, 1.5, 0.001, 'a', '00:00:00');
INSERT INTO pb VALUES (1, '\x6566', '{"k":  null}', '<a>1</a>', '(1,2)'), (2, '\x', '0', '', '(0,0)'), (3, NULL, NULL, NULL, NULL), (4, '\x00', '[{}]', '<b/>', '(3,4)');
-- rows equal under `=` but distinct (numeric scale, interval units, -0)
CREATE TABLE kc (n numeric, i interval, f float8, m int);
INSERT INTO kc VALUES (1.0, '1 day', 0, 1), (1.00, '24 hours', '-0', 1);
CREATE TABLE kd (n numeric);
INSERT INTO kd VALUES (1), (1.0), (1.00), (1.000);
-- ferry:stream
INSERT INTO kb VALUES (6, '\x6100', '{"b": [1, 2.5]}', '{"b": [1, 2.5]}', '<c>6</c>', '(6,6)', '((6,6),(5,5))', '{6,-1,0}', '[(6,6),(7,7)]', '[(6,6),(7,7)]', '((6,6),(7,7),(7,6))', '<(6,6),6>', ARRAY['[6]'::json], 0.1, 0.1, 0.1, 'b', '6 seconds');
INSERT INTO pb VALUES (5, '\x6100', '1', '<five/>', '(5,5)');
UPDATE kb SET a = a + 10;
UPDATE kb SET j = jb::json, x = '<u/>', p = point(a, a) WHERE a IN (11, 12, 15);
UPDATE pb SET j = '{"u": 1}', x = '<u/>', p = '(9,9)';
UPDATE pb SET id = id + 10 WHERE id > 3;
DELETE FROM kb WHERE a IN (13, 16);
DELETE FROM kb WHERE ctid = (SELECT min(ctid) FROM kb WHERE a = 15);
DELETE FROM pb WHERE id IN (2, 15);
UPDATE kc SET m = 2 WHERE n::text = '1.00';
UPDATE kc SET m = 3 WHERE n::text = '1.0';
DELETE FROM kd WHERE n::text = '1.00';
DELETE FROM kd WHERE n::text = '1';
DELETE FROM kd WHERE n::text = '1.000';
