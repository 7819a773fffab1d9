SET SESSION sql_mode = '';
CREATE TABLE events (id int PRIMARY KEY, happened date);
INSERT INTO events VALUES (1, '2024-01-01'), (7, '0000-00-00');
