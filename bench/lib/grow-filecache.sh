# Sourced by bench scripts: grow_filecache DB ROWS adds ROWS synthetic rows to the lab instance's
# oc_filecache on old (DB: mysql or pgsql), as a large instance would have. Needs `on HOST CMD`.
grow_filecache() {
  local db=$1 rows=$2
  case "$db" in
    mysql)
      on old "mariadb --default-character-set=utf8mb4 owncloud" <<SQL
INSERT INTO oc_filecache (storage, path, path_hash, parent, name, mimetype, mimepart, size, mtime,
  storage_mtime, encrypted, unencrypted_size, etag, permissions, checksum)
SELECT 1, CONCAT('files/bench/d', seq DIV 1000, '/f', seq, '-😀.txt'), MD5(CONCAT('bench/', seq)),
  seq DIV 1000, CONCAT('f', seq, '-😀.txt'), 3, 2, seq * 7, 1600000000 + seq, 1600000000 + seq, 0, 0,
  SUBSTRING(MD5(seq), 1, 13), 27, IF(seq % 3 = 0, NULL, CONCAT('SHA1:', SHA1(seq)))
FROM seq_1_to_$rows;
SQL
      ;;
    pgsql)
      on old "cd / && runuser -u postgres -- psql -Xq -v ON_ERROR_STOP=1 -d owncloud" <<SQL
INSERT INTO oc_filecache (storage, path, path_hash, parent, name, mimetype, mimepart, size, mtime,
  storage_mtime, encrypted, unencrypted_size, etag, permissions, checksum)
SELECT 1, 'files/bench/d' || (s / 1000) || '/f' || s || '-😀.txt', md5('bench/' || s), s / 1000,
  'f' || s || '-😀.txt', 3, 2, s * 7, 1600000000 + s, 1600000000 + s, 0, 0, substr(md5(s::text), 1, 13),
  27, CASE WHEN s % 3 = 0 THEN NULL ELSE 'SHA1:' || md5(s::text) END
FROM generate_series(1, $rows) s;
ANALYZE;
SQL
      ;;
  esac
}
