CREATE SCHEMA "My Schema";
CREATE TABLE "My Schema"."Order" ("select" int PRIMARY KEY, "Mixed Case" text, "with space" text, "from" int UNIQUE);
INSERT INTO "My Schema"."Order" VALUES (1, 'a', 'b', 10), (2, NULL, '', 20);
CREATE TABLE public."user" (id int PRIMARY KEY, "group" int REFERENCES "My Schema"."Order"("select"));
INSERT INTO public."user" VALUES (1, 2);
