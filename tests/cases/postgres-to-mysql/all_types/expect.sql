SELECT CONCAT_WS('|', id, n, r, d, HEX(`by`), tstz, iv, ia, ta, bits + 0, gen) FROM {dst_db}.things ORDER BY id;
SELECT AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{dst_db}' AND TABLE_NAME = 'things';
SELECT COUNT(*) FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = '{dst_db}';
