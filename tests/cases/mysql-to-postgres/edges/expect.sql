SELECT id, n, fmd, with_tax, d3030, bu FROM shop.nums ORDER BY id;
SELECT id, n, fmd, with_tax FROM shop.nums_nk ORDER BY id;
SELECT id, n, y, y2, dt6, t6, t3, ts6, da FROM shop.temporal ORDER BY id;
SELECT id, n, y, y2, da FROM shop.temporal_nk ORDER BY id;
SELECT id, n, b1, b64, e, s, j FROM shop.misc ORDER BY id;
SELECT id, n, e, s FROM shop.misc_nk ORDER BY id;
