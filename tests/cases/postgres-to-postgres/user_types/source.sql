-- extension types (citext, isn's isbn: no binary I/O), composite, domain, range and
-- enum types, nested in each other and in arrays; one table in another schema
CREATE EXTENSION IF NOT EXISTS citext;
CREATE EXTENSION IF NOT EXISTS isn;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN positive AS integer NOT NULL CHECK (VALUE > 0);
CREATE DOMAIN zip AS text CHECK (VALUE ~ '^[0-9]{5}$');
CREATE TYPE address_type AS (street text, zip zip, tags citext[]);
CREATE TYPE floatrange AS RANGE (subtype = float8, subtype_diff = float8mi);
CREATE TABLE people (
  id int PRIMARY KEY,
  email citext UNIQUE,
  aliases citext[],
  book isbn,
  home address_type,
  homes address_type[],
  qty positive,
  feel mood,
  feels mood[],
  span floatrange,
  days daterange
);
INSERT INTO people VALUES
  (1, 'Ann@Example.com', '{A,b}', '978-0-393-04002-9', ROW('1 Main St', '12345', '{X,y}'),
   ARRAY[ROW('2 Side St', '54321', '{}')::address_type], 3, 'happy', '{sad,ok}',
   '[1.5,2.5)', '[2024-01-01,2024-02-01)'),
  (2, 'bob@example.com', NULL, NULL, NULL, NULL, 1, NULL, NULL, NULL, NULL);
CREATE SCHEMA app;
CREATE TABLE app.notes (id int PRIMARY KEY, who citext, addr address_type, n positive);
INSERT INTO app.notes VALUES (1, 'Zed', ROW('x', '00001', '{Q}'), 5);
-- ferry:stream
INSERT INTO people VALUES (3, 'Cy@Example.com', '{c}', '0-393-04002-X', ROW('3 Oak', '11111', '{Z}'),
  NULL, 2, 'ok', '{happy}', '[0,1]', 'empty');
UPDATE people SET email = 'ANN@example.com', home.zip = '99999', book = '978-1-4028-9462-6' WHERE id = 1;
UPDATE people SET feel = 'sad', span = '(,)' WHERE id = 2;
DELETE FROM app.notes WHERE who = 'zed';
INSERT INTO app.notes VALUES (2, 'Amy', ROW('y', '00002', NULL), 7);
