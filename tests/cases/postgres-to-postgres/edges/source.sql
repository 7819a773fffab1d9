-- the edges of every type, each through the full copy, the change stream (inserts,
-- an UPDATE of every row, DELETEs) and a backfill; *_nk tables are keyless copies
-- (json, xml and point in keyless tables: see keyless_edges)
CREATE TYPE edge_mood AS ENUM ('a', 'b c', 'it''s', 'last,one');
CREATE TABLE nums (
  id int PRIMARY KEY, n int NOT NULL DEFAULT 0,
  i2 smallint, i4 integer, i8 bigint, b boolean,
  r real, d double precision,
  num numeric, n6530 numeric(65,30), n1000 numeric(1000,0), n52 numeric(5,2),
  total numeric(12,2), with_tax numeric(13,2) GENERATED ALWAYS AS (total * 1.2) STORED
);
CREATE TABLE temporal (
  id int PRIMARY KEY, n int NOT NULL DEFAULT 0,
  da date, t6 time(6), tt timetz, ts6 timestamp(6), tz6 timestamptz(6), iv interval
);
CREATE TABLE misc (
  id int PRIMARY KEY, n int NOT NULL DEFAULT 0,
  b1 bit(1), b64 bit(64), vb varbit, m edge_mood, jb jsonb, u uuid, j json
);
CREATE TABLE nums_nk (LIKE nums);
CREATE TABLE temporal_nk (LIKE temporal);
CREATE TABLE misc_nk (LIKE misc); ALTER TABLE misc_nk DROP COLUMN j;
INSERT INTO nums (id, i2, i4, i8, b, r, d, num, n6530, n1000, n52, total) VALUES
 (1, -32768, -2147483648, -9223372036854775808, false, -3.4028235e38, -1.7976931348623157e308,
  '-1e1000', -99999999999999999999999999999999999.999999999999999999999999999999, -(10::numeric ^ 999), -999.99, 10.01),
 (2, 0, 0, 0, true, '-0', '-0', 'NaN', 0, 0, 0, 0),
 (3, NULL, NULL, NULL, NULL, 'NaN', 'NaN', NULL, NULL, NULL, NULL, NULL);
INSERT INTO temporal (id, da, t6, tt, ts6, tz6, iv) VALUES
 (1, '4713-01-01 BC', '00:00:00', '00:00:00+15:59', '4713-01-01 00:00:00 BC', '-infinity', '-178000000 years'),
 (2, '5874897-12-31', '24:00:00', '24:00:00-15:59', '294276-12-31 23:59:59.999999', 'infinity', '178000000 years'),
 (3, 'infinity', NULL, NULL, 'infinity', NULL, NULL);
INSERT INTO misc (id, b1, b64, vb, m, jb, u, j) VALUES
 (1, B'1', B'1111111111111111111111111111111111111111111111111111111111111111', B'', 'a', '{"big": 18446744073709551615, "dec": 0.10, "exp": 1e300}', '00000000-0000-0000-0000-000000000000', '{"big": 18446744073709551615, "exp": 1e300, "tiny": -1.5E-10}'),
 (2, B'0', B'0000000000000000000000000000000000000000000000000000000000000000', B'10101', 'last,one', '[1e-7, 123456789012345678901234567890, -0.0, 0]', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '[1e-7, -0.0]'),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
INSERT INTO nums_nk SELECT * FROM nums;
INSERT INTO temporal_nk SELECT * FROM temporal;
INSERT INTO misc_nk SELECT id, n, b1, b64, vb, m, jb, u FROM misc;
-- ferry:stream
INSERT INTO nums (id, i2, i4, i8, b, r, d, num, n6530, n1000, n52, total) VALUES
 (4, 32767, 2147483647, 9223372036854775807, true, 'Infinity', 'Infinity', 'Infinity', 0.000000000000000000000000000001, 10::numeric ^ 999, 999.99, 9999999999.99),
 (5, -1, -1, -1, false, '-Infinity', '-Infinity', '-Infinity', -0.000000000000000000000000000001, -1, -0.01, -0.05),
 (6, 1, 1, 1, NULL, 1.1754944e-38, 4.9e-324, 0.000000000000000000000000000000000000000000000000001, 0, 0, 0, 0);
INSERT INTO temporal (id, da, t6, tt, ts6, tz6, iv) VALUES
 (4, '-infinity', '00:00:00.000001', '12:00:00.5+00', '-infinity', '294276-12-31 23:59:59.999999+00', '-1 mon 1 day -00:00:00.000001'),
 (5, '0001-01-01', '23:59:59.999999', '23:59:59.999999+00', '1970-01-01 00:00:00', '4713-01-01 00:00:00+00 BC', '0');
INSERT INTO misc (id, b1, b64, vb, m, jb, u, j) VALUES
 (4, B'1', B'1000000000000000000000000000000000000000000000000000000000000001', B'1', 'it''s', '{"n": [0.1, 1e-308, 9223372036854775807]}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"n": [0.1, 1e-308]}'),
 (5, B'0', B'0000000000000000000000000000000000000000000000000000000000000001', B'0', 'b c', '"text"', NULL, 'null');
INSERT INTO nums_nk SELECT * FROM nums WHERE id >= 4;
INSERT INTO temporal_nk SELECT * FROM temporal WHERE id >= 4;
INSERT INTO misc_nk SELECT id, n, b1, b64, vb, m, jb, u FROM misc WHERE id >= 4;
UPDATE nums SET n = n + 1; UPDATE nums_nk SET n = n + 1;
UPDATE temporal SET n = n + 1; UPDATE temporal_nk SET n = n + 1;
UPDATE misc SET n = n + 1; UPDATE misc_nk SET n = n + 1;
DELETE FROM nums WHERE id IN (2, 5); DELETE FROM nums_nk WHERE id IN (2, 5);
DELETE FROM temporal WHERE id IN (2, 5); DELETE FROM temporal_nk WHERE id IN (2, 5);
DELETE FROM misc WHERE id IN (2, 5); DELETE FROM misc_nk WHERE id IN (2, 5);
