CREATE TABLE events (id int PRIMARY KEY, happened datetime(6), y year);
INSERT INTO events VALUES (1, '2024-01-01 00:00:00', 0);
-- ferry:stream
SET SESSION sql_mode = '';
INSERT INTO events VALUES (7, '0000-00-00 00:00:00', 2155);
