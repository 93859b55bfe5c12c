// ocmigrate: every user's files root (ETag, file id) in oc_filecache, and the highest file id.
// An ETag changes up the folder chain on every write, so comparing these roots between two
// moments tells whether anything changed under them. Read-only. $argv[1] = instance root.
$root = rtrim($argv[1], '/');
$read = ocm_read_config($root);
if (is_string($read)) { echo json_encode(array('error' => $read)), "\n"; exit(0); }
list($merged, ) = $read;
try {
    list($q, $db) = ocm_db($merged, ocm_datadir($root, $merged));
    $p = $db['prefix'];
    $out = array('roots' => new stdClass(), 'max_fileid' => 0);
    foreach ($q("SELECT s.id AS sid, f.fileid, f.etag FROM {$p}filecache f JOIN {$p}storages s ON s.numeric_id = f.storage WHERE s.id LIKE 'home::%' AND f.path = 'files' ORDER BY s.id") as $r) {
        $out['roots']->{substr($r['sid'], 6)} = array('fileid' => (int)$r['fileid'], 'etag' => $r['etag']);
    }
    $m = $q("SELECT MAX(fileid) AS m FROM {$p}filecache");
    $out['max_fileid'] = (int)$m[0]['m'];
    echo json_encode($out), "\n";
} catch (Exception $e) { echo json_encode(array('error' => 'db: ' . $e->getMessage())), "\n"; }
