// ocmigrate PHP prelude: reading an instance's config and database the way ownCloud does.
// Comes after src/instance/merge.php (PRELUDE_PHP joins them). Shared by the programs ocmigrate
// runs on a host (inventory, file cache check, …). Read-only: the SQLite database is opened with
// SQLITE3_OPEN_READONLY and the callers run SELECTs only.
// Works on PHP 7.0 and later.
error_reporting(E_ALL & ~E_NOTICE & ~E_DEPRECATED);

/** The config as ownCloud merges it (ocm_merge_config, src/instance/merge.php, which precedes
 *  this file). Returns array(merged, file names) or a string naming the error: no_config,
 *  config_unreadable, config_no_array, or "config_failed: <PHP's message>". */
function ocm_read_config($root) {
    $cfgfile = "$root/config/config.php";
    if (!file_exists($cfgfile)) return 'no_config';
    if (!is_readable($cfgfile)) return 'config_unreadable';
    try {
        $r = ocm_merge_config("$root/config");
    } catch (OcmConfigError $e) {
        return $e->getCode() === 2 ? 'config_failed: ' . $e->getMessage() : 'config_unreadable: ' . $e->getMessage();
    }
    if (count($r['config']) === 0) return 'config_no_array';
    return array($r['config'], $r['files']);
}

function ocm_datadir($root, $merged) {
    return isset($merged['datadirectory']) ? rtrim($merged['datadirectory'], '/') : "$root/data";
}

/** Connect to the instance's database. Returns array(query closure, facts); throws on failure. */
function ocm_db($merged, $datadir) {
    $type = isset($merged['dbtype']) ? $merged['dbtype'] : 'sqlite';
    $facts = array('type' => $type, 'prefix' => isset($merged['dbtableprefix']) ? $merged['dbtableprefix'] : 'oc_');
    if ($type === 'sqlite' || $type === 'sqlite3') {
        $file = $datadir . '/' . (isset($merged['dbname']) ? $merged['dbname'] : 'owncloud') . '.db';
        $facts['file'] = $file;
        if (!is_file($file)) throw new Exception("no SQLite database at $file");
        $sq = new SQLite3($file, SQLITE3_OPEN_READONLY);
        $sq->busyTimeout(10000);
        $q = function ($sql) use ($sq) { $r = $sq->query($sql); if (!$r) throw new Exception($sq->lastErrorMsg()); $rows = array(); while ($row = $r->fetchArray(SQLITE3_ASSOC)) $rows[] = $row; return $rows; };
        $facts['server'] = 'sqlite ' . SQLite3::version()['versionString'];
        return array($q, $facts);
    }
    // dbhost is split on the first ':' as ownCloud does: digits are a port, anything else a socket.
    $host = isset($merged['dbhost']) ? $merged['dbhost'] : 'localhost';
    $port = null; $socket = null;
    if (($i = strpos($host, ':')) !== false) { $rest = substr($host, $i + 1); $host = substr($host, 0, $i); if (ctype_digit($rest)) $port = $rest; else $socket = $rest; }
    $name = isset($merged['dbname']) ? $merged['dbname'] : 'owncloud';
    if ($type === 'mysql') {
        $dsn = $socket ? "mysql:unix_socket=$socket;dbname=$name" : "mysql:host=$host;dbname=$name" . ($port ? ";port=$port" : '');
        if (!empty($merged['mysql.utf8mb4'])) $dsn .= ';charset=utf8mb4';
    } else {
        $dsn = "pgsql:host=" . ($socket ?: $host) . ";dbname=$name" . ($port ? ";port=$port" : '');
    }
    $pdo = new PDO($dsn, isset($merged['dbuser']) ? $merged['dbuser'] : '', isset($merged['dbpassword']) ? $merged['dbpassword'] : '', array(PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION));
    $q = function ($sql) use ($pdo) { return $pdo->query($sql)->fetchAll(PDO::FETCH_ASSOC); };
    $facts['server'] = $pdo->getAttribute(PDO::ATTR_SERVER_VERSION);
    $facts['host'] = $host; $facts['port'] = $port; $facts['socket'] = $socket; $facts['name'] = $name;
    return array($q, $facts);
}

/** Quote an identifier that is a keyword in some dialect (`key`, `lock`). */
function ocm_ident($type, $name) { return $type === 'mysql' ? "`$name`" : "\"$name\""; }
