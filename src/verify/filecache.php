// ocmigrate file cache check: for every oc_filecache row of each home storage (home::<uid>),
// the file on this host's disk must have mtime == storage_mtime and, for files that are not
// encrypted, size == size: the exact condition under which ownCloud keeps ETags. Read-only.
// $argv[1] = instance root, $argv[2] = how many mismatches to list at most, $argv[3] (optional)
// = only these file ids, comma-separated (the rows another host found disagreeing; empty: all),
// $argv[4] (optional) = "k/n": only the rows whose file id is k modulo n (one of n processes).
// $argv[5] (optional) = "rows": print the rows instead of checking them on this disk (the operator
// compares them with its fresh manifest of the disk): "S\t<uid>\t<base>" for each storage, then
// "<fileid>\t<storage_mtime>\t<size>\t<d|f>\t<encrypted 0|1>\t<path>" for each of its rows (uid,
// base and path rawurlencoded), and "E\t<rows>\t<storages>" last: an answer without it is cut.
$root = rtrim($argv[1], '/');
$limit = isset($argv[2]) ? (int)$argv[2] : 200;
$only = '';
if (isset($argv[3])) {
    $ids = array_map('intval', array_filter(explode(',', $argv[3]), 'strlen'));
    if ($argv[3] !== '') $only = ' AND fileid IN (' . ($ids ? implode(',', $ids) : '-1') . ')';
}
if (isset($argv[4]) && preg_match('#^(\d+)/(\d+)$#', $argv[4], $m) && (int)$m[2] > 1) {
    $only .= ' AND fileid % ' . (int)$m[2] . ' = ' . (int)$m[1];
}
$rows_only = isset($argv[5]) && $argv[5] === 'rows';
$read = ocm_read_config($root);
if (is_string($read)) { echo json_encode(array('error' => $read)), "\n"; exit(0); }
list($merged, ) = $read;
$datadir = ocm_datadir($root, $merged);
try {
    list($q, $db) = ocm_db($merged, $datadir);
} catch (Exception $e) { echo json_encode(array('error' => 'db: ' . $e->getMessage())), "\n"; exit(0); }
$p = $db['prefix'];
$homes = array();
try { foreach ($q("SELECT user_id, home FROM {$p}accounts") as $r) if ($r['home'] !== null && $r['home'] !== '') $homes[$r['user_id']] = rtrim($r['home'], '/'); } catch (Exception $e) { }
$dir = $q("SELECT id FROM {$p}mimetypes WHERE mimetype = 'httpd/unix-directory'");
$dirmime = $dir ? (int)$dir[0]['id'] : -1;
$out = array('rows' => 0, 'storages' => 0, 'mismatch_count' => 0, 'mismatches' => array());
foreach ($q("SELECT numeric_id, id FROM {$p}storages WHERE id LIKE 'home::%' ORDER BY numeric_id") as $s) {
    $uid = substr($s['id'], 6);
    $base = isset($homes[$uid]) ? $homes[$uid] : "$datadir/$uid";
    $sid = (int)$s['numeric_id'];
    $out['storages']++;
    $last = -1;
    if ($rows_only) echo "S\t", rawurlencode($uid), "\t", rawurlencode($base), "\n";
    while (true) {
        $rows = $q("SELECT fileid, path, size, storage_mtime, mimetype, encrypted FROM {$p}filecache WHERE storage = $sid AND fileid > $last$only ORDER BY fileid LIMIT 5000");
        if (!$rows) break;
        if ($rows_only) {
            $lines = array();
            foreach ($rows as $r) {
                $lines[] = $r['fileid'] . "\t" . (int)$r['storage_mtime'] . "\t" . (int)$r['size'] . "\t" . ((int)$r['mimetype'] === $dirmime ? 'd' : 'f') . "\t" . ((int)$r['encrypted'] ? 1 : 0) . "\t" . rawurlencode($r['path']);
            }
            $last = (int)$r['fileid'];
            $out['rows'] += count($rows);
            echo implode("\n", $lines), "\n";
            continue;
        }
        foreach ($rows as $r) {
            $last = (int)$r['fileid'];
            $out['rows']++;
            $f = $r['path'] === '' ? $base : "$base/" . $r['path'];
            $st = @lstat($f);
            $kind = null; $disk = null; $want = null;
            $isdir = (int)$r['mimetype'] === $dirmime;
            if ($st === false) { $kind = 'missing'; }
            elseif ((int)$st['mtime'] !== (int)$r['storage_mtime']) { $kind = 'mtime'; $disk = (int)$st['mtime']; $want = (int)$r['storage_mtime']; }
            elseif (!$isdir && !(int)$r['encrypted'] && (int)$st['size'] !== (int)$r['size']) { $kind = 'size'; $disk = (int)$st['size']; $want = (int)$r['size']; }
            if ($kind !== null) {
                $out['mismatch_count']++;
                if (count($out['mismatches']) < $limit) $out['mismatches'][] = array('user' => $uid, 'path' => $r['path'], 'fileid' => (int)$r['fileid'], 'kind' => $kind, 'cache' => $want, 'disk' => $disk);
            }
        }
    }
}
if ($rows_only) { echo "E\t", $out['rows'], "\t", $out['storages'], "\n"; exit(0); }
echo json_encode($out), "\n";
