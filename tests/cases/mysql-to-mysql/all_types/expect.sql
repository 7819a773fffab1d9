SELECT id, total, f, d, t, y, ts, HEX(bin), LENGTH(blobby), total2 FROM {dst_db}.orders ORDER BY id;
SELECT note = CONCAT('tab', CHAR(9), 'here', CHAR(10), 'newline ', CHAR(92), ' back "quote" it''s 😀 ', CHAR(13), ' cr'), latin, HEX(latin), tags, kind, flags + 0, doc FROM {dst_db}.customers WHERE id = 1;
SELECT AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{dst_db}' AND TABLE_NAME = 'customers';
SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = '{dst_db}' AND INDEX_NAME = 'idx_name';
