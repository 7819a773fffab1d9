-- a base type defined outside an extension: its I/O functions cannot be copied, so
-- the run refuses it up front, naming table, column and type
CREATE TYPE myint;
CREATE FUNCTION myint_in(cstring) RETURNS myint AS 'int4in' LANGUAGE internal IMMUTABLE STRICT;
CREATE FUNCTION myint_out(myint) RETURNS cstring AS 'int4out' LANGUAGE internal IMMUTABLE STRICT;
CREATE TYPE myint (INPUT = myint_in, OUTPUT = myint_out, LIKE = int4);
CREATE TABLE odd (id int PRIMARY KEY, v myint);
INSERT INTO odd VALUES (1, '42');
