-- an unbounded varbit (was varchar(1)) and long bit strings; a primary key of a
-- varchar and a bytea, too long for InnoDB at the default widths (error 1071)
CREATE TABLE bits (id int PRIMARY KEY, v varbit, w bit varying(2000));
CREATE TABLE keys (name varchar(50), blob bytea, n int, PRIMARY KEY (name, blob));
-- a plain (non-unique) index on text: whole values stay, the index takes a prefix
CREATE TABLE docs (id int PRIMARY KEY, body text);
CREATE INDEX docs_body ON docs (body);
INSERT INTO docs VALUES (1, repeat('é', 2000)), (2, 'short');
INSERT INTO bits VALUES (1, B'1', B'0'), (2, repeat('10', 600)::varbit, repeat('01', 1000)::varbit), (3, B'', NULL);
INSERT INTO keys VALUES ('x', decode(repeat('ab', 1500), 'hex'), 1), ('x', '\x00', 2), ('y', '', 3);
-- ferry:stream
UPDATE docs SET body = repeat('x', 5000) WHERE id = 2;
UPDATE bits SET v = repeat('1', 3000)::varbit WHERE id = 1;
INSERT INTO bits VALUES (4, repeat('0', 70)::varbit, B'1');
UPDATE keys SET n = 10 WHERE name = 'x' AND blob = '\x00';
DELETE FROM keys WHERE name = 'y';
INSERT INTO keys VALUES ('z', decode(repeat('cd', 1400), 'hex'), 4);
