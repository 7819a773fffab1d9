SELECT a, encode(b, 'hex'), encode(vb, 'hex'), encode(bl, 'hex'), j::text, f, d, dc, s, dt FROM shop.kb ORDER BY a, b;
SELECT id, encode(b, 'hex'), encode(vb, 'hex'), encode(bl, 'hex'), j::text FROM shop.pb ORDER BY id;
SELECT encode(k, 'hex'), v FROM shop.bk ORDER BY k;
SELECT encode(convert_to(s, 'UTF8'), 'hex'), n FROM shop.kc ORDER BY 1;
SELECT encode(convert_to(c::text, 'UTF8'), 'hex'), n FROM shop.kh ORDER BY 1;
SELECT l, c::text, n FROM shop.kl ORDER BY n;
