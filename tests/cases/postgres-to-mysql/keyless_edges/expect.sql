SELECT a, HEX(`by`), j, jb, r, d, n, t, ts FROM {dst_db}.kb ORDER BY a, `by`;
SELECT id, HEX(`by`), j, jb FROM {dst_db}.pb ORDER BY id;
SELECT HEX(s), m FROM {dst_db}.kc ORDER BY HEX(s);
SELECT HEX(c), n FROM {dst_db}.kh ORDER BY HEX(c);
