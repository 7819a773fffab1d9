CREATE TABLE ev (id int PRIMARY KEY, at timestamptz);
INSERT INTO ev VALUES (1, '2024-01-01 00:00:00+00');
-- ferry:stream
INSERT INTO ev VALUES (2, 'infinity');
