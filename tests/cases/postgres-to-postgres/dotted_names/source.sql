-- schema and table names that contain dots (and look like other qualified names)
CREATE SCHEMA "a.b";
CREATE SCHEMA "x";
CREATE TABLE "a.b".t (id int PRIMARY KEY, v text);
CREATE TABLE "a.b"."c.d" (id int PRIMARY KEY, v text);
CREATE TABLE x."y.z" (v text);
INSERT INTO "a.b".t VALUES (1, 'one'), (2, 'two');
INSERT INTO "a.b"."c.d" VALUES (1, 'first');
INSERT INTO x."y.z" VALUES ('k');
-- ferry:stream
INSERT INTO "a.b".t VALUES (3, 'three');
UPDATE "a.b".t SET v = 'TWO' WHERE id = 2;
DELETE FROM "a.b"."c.d" WHERE id = 1;
INSERT INTO "a.b"."c.d" VALUES (2, 'second');
INSERT INTO x."y.z" VALUES ('l');
UPDATE x."y.z" SET v = 'K' WHERE v = 'k';
