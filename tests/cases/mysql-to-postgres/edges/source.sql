-- the edges of every type, each through the full copy, the change stream (inserts,
-- an UPDATE of every row, DELETEs) and a backfill; *_nk tables are keyless copies
CREATE TABLE nums (
  id int PRIMARY KEY, n int NOT NULL DEFAULT 0,
  ti tinyint, tu tinyint unsigned, si smallint, su smallint unsigned,
  mi mediumint, mu mediumint unsigned, ii int, iu int unsigned, bi bigint, bu bigint unsigned,
  f float, fmd float(10,2), d double, dmd double(20,4),
  d65 decimal(65,30), d65z decimal(65,0), d52 decimal(5,2), d3030 decimal(30,30),
  total decimal(12,2), with_tax decimal(13,2) AS (total * 1.2) STORED
);
CREATE TABLE temporal (
  id int PRIMARY KEY, n int NOT NULL DEFAULT 0,
  y year, y2 year, dt6 datetime(6), dt0 datetime, t6 time(6), t0 time, t3 time(3),
  ts6 timestamp(6) NULL, ts0 timestamp NULL DEFAULT NULL, da date
);
CREATE TABLE misc (
  id int PRIMARY KEY, n int NOT NULL DEFAULT 0,
  b1 bit(1), b64 bit(64), e enum('', 'a', 'b c', 'last'), s set('a', 'b', 'c', 'd'),
  j json
);
CREATE TABLE nums_nk LIKE nums; ALTER TABLE nums_nk DROP PRIMARY KEY;
CREATE TABLE temporal_nk LIKE temporal; ALTER TABLE temporal_nk DROP PRIMARY KEY;
CREATE TABLE misc_nk LIKE misc; ALTER TABLE misc_nk DROP PRIMARY KEY;
INSERT INTO nums (id, ti, tu, si, su, mi, mu, ii, iu, bi, bu, f, fmd, d, dmd, d65, d65z, d52, d3030, total) VALUES
 (1, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295, -9223372036854775808, 18446744073709551615,
  -3.40282e38, -99999999.99, -1.7976931348623157e308, -9999999999999999.9999,
  -99999999999999999999999999999999999.999999999999999999999999999999, -99999999999999999999999999999999999999999999999999999999999999999,
  -999.99, -0.999999999999999999999999999999, 10.01),
 (2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
INSERT INTO temporal (id, y, y2, dt6, dt0, t6, t0, t3, ts6, ts0, da) VALUES
 (1, 0, 1901, '1000-01-01 00:00:00.000000', '9999-12-31 23:59:59', '-838:59:59.000000', '838:59:59', '-00:00:00.001', '1970-01-01 00:00:01.000000', '2038-01-19 03:14:07', '1000-01-01'),
 (2, 2155, 0, '1000-01-01 00:00:00.000001', '1000-01-01 00:00:00', '838:59:59.000000', '-838:59:59', '00:00:00.999', '2038-01-19 03:14:07.999999', '1970-01-01 00:00:01', '9999-12-31'),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
INSERT INTO misc (id, b1, b64, e, s, j) VALUES
 (1, b'1', b'1111111111111111111111111111111111111111111111111111111111111111', '', '', '{"big": 18446744073709551615, "neg": -9223372036854775808, "dec": 0.10, "exp": 1e300, "tiny": -1.5E-10}'),
 (2, b'0', b'0', 'last', 'a,b,c,d', '[1e-7, 123456789012345678901234567890, -0.0, 0]'),
 (3, NULL, NULL, NULL, NULL, NULL);
INSERT INTO nums_nk (id, ti, tu, si, su, mi, mu, ii, iu, bi, bu, f, fmd, d, dmd, d65, d65z, d52, d3030, total)
  SELECT id, ti, tu, si, su, mi, mu, ii, iu, bi, bu, f, fmd, d, dmd, d65, d65z, d52, d3030, total FROM nums;
INSERT INTO temporal_nk SELECT * FROM temporal;
INSERT INTO misc_nk SELECT * FROM misc;
-- ferry:stream
INSERT INTO nums (id, ti, tu, si, su, mi, mu, ii, iu, bi, bu, f, fmd, d, dmd, d65, d65z, d52, d3030, total) VALUES
 (4, 127, 1, 32767, 1, 8388607, 1, 2147483647, 1, 9223372036854775807, 9223372036854775808,
  3.40282e38, 99999999.99, 1.7976931348623157e308, 9999999999999999.9999,
  99999999999999999999999999999999999.999999999999999999999999999999, 99999999999999999999999999999999999999999999999999999999999999999,
  999.99, 0.000000000000000000000000000001, 9999999999.99),
 (5, -1, 254, -1, 1, -1, 1, -1, 1, -1, 1, 1.17549435e-38, -0.01, 2.2250738585072014e-308, -0.0001,
  0.000000000000000000000000000001, 1, -0.01, -0.000000000000000000000000000001, -0.05);
INSERT INTO temporal (id, y, y2, dt6, dt0, t6, t0, t3, ts6, ts0, da) VALUES
 (4, 0, 2155, '9999-12-31 23:59:59.999999', '1000-01-01 00:00:00', '-00:00:00.000001', '-00:00:01', '-838:59:59.000', '2038-01-19 03:14:07.999999', '1970-01-01 00:00:01', '9999-12-31'),
 (5, 1901, 0, '2024-02-29 12:34:56.5', '2024-12-31 00:00:00', '00:00:00.000000', '00:00:00', '838:59:59.000', '2000-02-29 00:00:00.000001', '2000-01-01 00:00:00', '2024-02-29');
INSERT INTO misc (id, b1, b64, e, s, j) VALUES
 (4, b'1', b'1000000000000000000000000000000000000000000000000000000000000001', 'b c', 'd', '{"n": [0.1, 1e-308, -1.7976931348623157e308, 9223372036854775807]}'),
 (5, b'0', b'0000000000000000000000000000000000000000000000000000000000000000', 'a', 'a,d', '"text"');
INSERT INTO nums_nk (id, ti, tu, si, su, mi, mu, ii, iu, bi, bu, f, fmd, d, dmd, d65, d65z, d52, d3030, total)
  SELECT id, ti, tu, si, su, mi, mu, ii, iu, bi, bu, f, fmd, d, dmd, d65, d65z, d52, d3030, total FROM nums WHERE id >= 4;
INSERT INTO temporal_nk SELECT * FROM temporal WHERE id >= 4;
INSERT INTO misc_nk SELECT * FROM misc WHERE id >= 4;
UPDATE nums SET n = n + 1; UPDATE nums_nk SET n = n + 1;
UPDATE temporal SET n = n + 1; UPDATE temporal_nk SET n = n + 1;
UPDATE misc SET n = n + 1; UPDATE misc_nk SET n = n + 1;
DELETE FROM nums WHERE id IN (2, 5); DELETE FROM nums_nk WHERE id IN (2, 5);
DELETE FROM temporal WHERE id IN (2, 5); DELETE FROM temporal_nk WHERE id IN (2, 5);
DELETE FROM misc WHERE id IN (2, 5); DELETE FROM misc_nk WHERE id IN (2, 5);
