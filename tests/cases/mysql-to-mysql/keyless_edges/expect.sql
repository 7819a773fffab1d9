SELECT a, HEX(b), HEX(vb), HEX(bl), j, f, d, dc, s, dt FROM {dst_db}.kb ORDER BY a, b;
SELECT id, HEX(b), HEX(vb), HEX(bl), j FROM {dst_db}.pb ORDER BY id;
SELECT HEX(k), v FROM {dst_db}.bk ORDER BY k;
SELECT HEX(s), n FROM {dst_db}.kc ORDER BY HEX(s);
SELECT HEX(c), n FROM {dst_db}.kh ORDER BY HEX(c);
SELECT l, c, n FROM {dst_db}.kl ORDER BY n;
