CREATE TABLE keep_me (id int PRIMARY KEY, v varchar(5));
CREATE TABLE audit_log (id int PRIMARY KEY);
INSERT INTO keep_me VALUES (1,'a'),(2,NULL);
INSERT INTO audit_log VALUES (1);
