-- schemas and tables whose names differ only in case: distinct tables on a target
-- with lower_case_table_names = 0, and distinct rows in Ferry's checkpoint tables
CREATE SCHEMA "A";
CREATE SCHEMA a;
CREATE TABLE "A"."T" (id int PRIMARY KEY, v text);
CREATE TABLE a.t (id int PRIMARY KEY, v text);
INSERT INTO "A"."T" VALUES (1, 'upper');
INSERT INTO a.t VALUES (1, 'lower'), (2, 'lower two');
-- ferry:stream
INSERT INTO "A"."T" VALUES (2, 'upper two');
UPDATE a.t SET v = 'LOWER' WHERE id = 1;
