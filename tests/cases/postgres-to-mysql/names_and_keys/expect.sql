SELECT id, v FROM `{dst_db}_A`.`T` ORDER BY id;
SELECT id, v FROM `{dst_db}_a`.`t` ORDER BY id;
SELECT id, length(v), left(v, 4), length(w), left(w, 4) FROM `{dst_db}_a`.bits ORDER BY id;
SELECT name, length(`blob`), left(hex(`blob`), 4), n FROM `{dst_db}_a`.`keys` ORDER BY name, n
