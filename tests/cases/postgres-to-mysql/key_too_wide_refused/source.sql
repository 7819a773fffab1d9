-- a key whose bounded columns alone exceed InnoDB's 3072 bytes (utf8mb4): refused up
-- front, naming table, key and size, instead of MariaDB's raw error 1071
CREATE TABLE wide (a varchar(500), b varchar(400), PRIMARY KEY (a, b));
INSERT INTO wide VALUES ('x', 'y');
