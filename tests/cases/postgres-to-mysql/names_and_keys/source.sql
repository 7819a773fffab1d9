-- schemas and tables whose names differ only in case; an unbounded varbit; a key of
-- a varchar and a bytea (too long for InnoDB at the default widths)
CREATE SCHEMA "A";
CREATE SCHEMA a;
CREATE TABLE "A"."T" (id int PRIMARY KEY, v text);
CREATE TABLE a.t (id int PRIMARY KEY, v text);
CREATE TABLE a.bits (id int PRIMARY KEY, v varbit, w bit varying(2000));
CREATE TABLE a.keys (name varchar(50), blob bytea, n int, PRIMARY KEY (name, blob));
INSERT INTO "A"."T" VALUES (1, 'upper');
INSERT INTO a.t VALUES (1, 'lower'), (2, 'lower two');
INSERT INTO a.bits VALUES (1, B'1', B'0'), (2, repeat('10', 600)::varbit, repeat('01', 1000)::varbit), (3, B'', NULL);
INSERT INTO a.keys VALUES ('x', decode(repeat('ab', 1500), 'hex'), 1), ('x', '\x00', 2), ('y', '', 3);
-- ferry:stream
INSERT INTO "A"."T" VALUES (2, 'upper two');
UPDATE a.t SET v = 'LOWER' WHERE id = 1;
UPDATE a.bits SET v = repeat('1', 3000)::varbit WHERE id = 1;
INSERT INTO a.bits VALUES (4, repeat('0', 70)::varbit, B'1');
UPDATE a.keys SET n = 10 WHERE name = 'x' AND blob = '\x00';
DELETE FROM a.keys WHERE name = 'y';
INSERT INTO a.keys VALUES ('z', decode(repeat('cd', 1400), 'hex'), 4);
