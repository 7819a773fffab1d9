CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE things (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  b boolean, i2 smallint, i4 integer, i8 bigint,
  n numeric, n2 numeric(10,2), r real, d double precision,
  c char(5), vc varchar(10), t text, by bytea,
  dt date, tm time(3), ttz timetz, ts timestamp(6), tstz timestamptz, iv interval,
  j json, jb jsonb, u uuid, ip inet, cidr cidr, mac macaddr,
  bits bit(4), vbits varbit(8), m mood,
  ia integer[], ta text[], ma mood[],
  gen numeric GENERATED ALWAYS AS (n2 * 2) STORED,
  CONSTRAINT positive CHECK (i4 > 0)
);
COMMENT ON TABLE things IS 'all the types';
COMMENT ON COLUMN things.t IS 'free text';
CREATE INDEX things_t ON things (lower(t));
CREATE TABLE serials (id serial PRIMARY KEY, thing_id bigint REFERENCES things(id) ON DELETE CASCADE, note text DEFAULT 'x');
CREATE TABLE nokey (a int, b text);
CREATE TABLE blobs (id int PRIMARY KEY, b bytea);
-- ferry:stream
INSERT INTO things (b,i2,i4,i8,n,n2,r,d,c,vc,t,by,dt,tm,ttz,ts,tstz,iv,j,jb,u,ip,cidr,mac,bits,vbits,m,ia,ta,ma) VALUES
 (true, -32768, 2147483647, -9223372036854775808, 'NaN', 12345678.90, 'Infinity', '-Infinity', 'ab', 'héllo', E'tab\t nl\n bs\\ q'' 😀', '\x00ff', '4713-01-01 BC', '23:59:59.999', '12:00:00+05:30', '294276-12-31 23:59:59.999999', 'infinity', '1 year 2 mons 3 days 04:05:06.789', '{"b": 1, "a": [1,2]}', '{"b": 1, "a": [1,2]}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '192.168.1.1/24', '10.0.0.0/8', '08:00:2b:01:02:03', B'1010', B'101', 'happy', '{1,NULL,3}', '{"a b","c\"d",NULL}', '{sad,ok}'),
 (false, 0, 1, 0, 123456789012345678901234567890.123456789012345678901234567890, -0.01, 1.17549435e-38, 2.2250738585072014e-308, '', '', '', '', '2024-02-29', '00:00:00', '00:00:00+00', '2000-01-01 00:00:00', '2000-01-01 00:00:00+00', '-1 days', 'null', '[]', NULL, '::1', '::/0', 'ff:ff:ff:ff:ff:ff', B'0000', B'', 'sad', '{}', '{}', '{}'),
 (NULL, NULL, 2, NULL, NULL, NULL, 'NaN', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
INSERT INTO serials (thing_id, note) SELECT id, 'n' || id FROM things;
INSERT INTO nokey VALUES (1, 'x'), (1, 'x'), (NULL, NULL), (NULL, '');
INSERT INTO blobs SELECT 1, decode(repeat('00ff5c0a', 1000000), 'hex'); INSERT INTO blobs VALUES (2, ''), (3, NULL);
-- through the stream these exercise updates (incl. a key change that leaves a TOASTed value unchanged) and deletes
UPDATE things SET i2 = i2 + 1; UPDATE things SET i2 = i2 - 1;
UPDATE blobs SET id = id + 10; UPDATE blobs SET id = id - 10;
INSERT INTO nokey VALUES (3, 'z'); DELETE FROM nokey WHERE a = 3;
