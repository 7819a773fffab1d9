-- a text key becomes varchar(768) on MySQL/MariaDB: a longer key is refused by the
-- server; the error names the table (and, streamed, the source position)
CREATE TABLE lk (k text PRIMARY KEY, v int);
INSERT INTO lk VALUES ('short', 1);
-- ferry:stream
INSERT INTO lk VALUES (repeat('x', 769), 2);
