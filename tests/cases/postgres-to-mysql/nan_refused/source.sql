CREATE TABLE m (id int PRIMARY KEY, v double precision);
INSERT INTO m VALUES (1, 1.5), (42, 'NaN');
