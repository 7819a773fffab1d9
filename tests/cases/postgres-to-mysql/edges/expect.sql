SELECT id, n, num, n52, with_tax, r, i8 FROM {dst_db}.nums ORDER BY id;
SELECT id, n, with_tax FROM {dst_db}.nums_nk ORDER BY id;
SELECT id, n, da, t6, t0, ts6, tz6, iv FROM {dst_db}.temporal ORDER BY id;
SELECT id, n, da FROM {dst_db}.temporal_nk ORDER BY id;
SELECT id, n, b1 + 0, b64 + 0, vb, m, u FROM {dst_db}.misc ORDER BY id;
SELECT id, n, m FROM {dst_db}.misc_nk ORDER BY id;
