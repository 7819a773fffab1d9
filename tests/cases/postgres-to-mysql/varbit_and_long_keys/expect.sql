SELECT id, length(v), left(v, 4), length(w), left(w, 4) FROM bits ORDER BY id;
SELECT name, length(`blob`), left(hex(`blob`), 4), n FROM `keys` ORDER BY name, n;
SELECT id, char_length(body), left(body, 2) FROM docs ORDER BY id;
SELECT column_name, column_type FROM information_schema.columns WHERE table_schema = '{dst_db}' AND table_name IN ('bits', 'docs', 'keys') ORDER BY table_name, ordinal_position
