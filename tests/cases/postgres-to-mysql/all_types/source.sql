CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE things (
  id serial PRIMARY KEY,
  b boolean DEFAULT true, i2 smallint, i4 integer, i8 bigint,
  n numeric, n2 numeric(10,2) DEFAULT 0, r real, d double precision,
  c char(5), vc varchar(10) DEFAULT 'it''s', t text, by bytea,
  dt date, tm time(3), ts timestamp(6) DEFAULT now(), tstz timestamptz, iv interval,
  j json, jb jsonb, u uuid, ip inet,
  bits bit(4), m mood,
  ia integer[], ta text[],
  gen numeric(12,2) GENERATED ALWAYS AS (n2 * 2) STORED,
  CONSTRAINT positive CHECK (i4 > 0)
);
CREATE UNIQUE INDEX things_vc ON things (vc);
CREATE TABLE kids (id bigint PRIMARY KEY, thing_id int REFERENCES things(id), name text NOT NULL);
CREATE INDEX kids_name ON kids (name);
CREATE TABLE blobs (id int PRIMARY KEY, b bytea);
CREATE TABLE nokey (a int, b text);
-- ferry:stream
INSERT INTO things (b,i2,i4,i8,n,n2,r,d,c,vc,t,by,dt,tm,ts,tstz,iv,j,jb,u,ip,bits,m,ia,ta) VALUES
 (true, -32768, 2147483647, -9223372036854775808, 12345678901234567890123456789012345.123456789012345678901234567890, 12345678.90, 3.4028235e38, 1.7976931348623157e308, 'ab', 'héllo', E'tab\t nl\n bs\\ q'' 😀 \r', '\x00ff5c0a', '0001-01-01', '23:59:59.999', '9999-12-31 23:59:59.999999', '2024-06-01 12:00:00.5+02', '1 day 02:00:00', '{"b": 1, "a": [1,2]}', '{"b": 1, "a": [1,2]}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '192.168.1.1/24', B'1010', 'happy', '{1,NULL,3}', '{"a b","c\"d",NULL}'),
 (false, 0, 1, 0, -0.000000000000000000000000000001, -0.01, -1.5, 0.1, '', '', '', '', '2024-02-29', '00:00:00', '2000-01-01 00:00:00', '1970-01-01 00:00:00+00', '00:00:00', 'null', '[]', NULL, '::1', B'0000', 'sad', '{}', '{}'),
 (NULL, NULL, 2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
INSERT INTO kids VALUES (1, 1, 'a'), (2, 2, 'b'), (3, NULL, '');
INSERT INTO blobs SELECT 1, decode(repeat('00ff5c0a', 1000000), 'hex'); INSERT INTO blobs VALUES (2, ''), (3, NULL);
-- through the stream these exercise updates (incl. a key change that leaves a TOASTed value unchanged) and deletes
UPDATE things SET i2 = i2 + 1; UPDATE things SET i2 = i2 - 1;
UPDATE blobs SET id = id + 10; UPDATE blobs SET id = id - 10;
INSERT INTO nokey VALUES (3, 'z'); DELETE FROM nokey WHERE a = 3;
