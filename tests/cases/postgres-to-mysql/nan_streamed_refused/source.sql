CREATE TABLE m (id int PRIMARY KEY, v numeric);
INSERT INTO m VALUES (1, 1.5);
-- ferry:stream
INSERT INTO m VALUES (42, 'NaN');
