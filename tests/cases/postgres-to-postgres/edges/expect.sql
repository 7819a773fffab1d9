SELECT id, n, i8, r, d, num, with_tax, length(n1000::text) FROM public.nums ORDER BY id;
SELECT id, n, r, num, with_tax FROM public.nums_nk ORDER BY id;
SELECT id, n, da, t6, tt, ts6, tz6, iv FROM public.temporal ORDER BY id;
SELECT id, n, da, ts6, tz6 FROM public.temporal_nk ORDER BY id;
SELECT id, n, b1, b64, vb, m, jb, u, j FROM public.misc ORDER BY id;
SELECT id, n, vb, m FROM public.misc_nk ORDER BY id;
