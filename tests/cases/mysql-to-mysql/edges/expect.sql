SELECT id, n, fmd, with_tax, d3030, bu FROM {dst_db}.nums ORDER BY id;
SELECT id, n, fmd, with_tax FROM {dst_db}.nums_nk ORDER BY id;
SELECT id, n, y, y2, dt6, t6, t3, ts6, da FROM {dst_db}.temporal ORDER BY id;
SELECT id, n, y, y2, da FROM {dst_db}.temporal_nk ORDER BY id;
SELECT id, n, b1 + 0, b64 + 0, e, s, ST_AsText(g), ST_AsText(p) FROM {dst_db}.misc ORDER BY id;
SELECT id, n, ST_AsText(p) FROM {dst_db}.misc_nk ORDER BY id;
