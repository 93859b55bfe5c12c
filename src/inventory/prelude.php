// ocmigrate PHP prelude: reading an instance's config and database the way ownCloud does.
// Shared by the programs ocmigrate runs on a host (inventory, file cache check, …). Read-only:
// the SQLite database is opened with SQLITE3_OPEN_READONLY and the callers run SELECTs only.
// Works on PHP 7.0 and later.
error_reporting(E_ALL & ~E_NOTICE & ~E_DEPRECATED);

/** The config as ownCloud merges it: config.php, then every *.config.php in natural order.
 *  Returns array(merged, file names) or a string naming the error. */
function ocm_read_config($root) {
    $cfgfile = "$root/config/config.php";
    if (!file_exists($cfgfile)) return 'no_config';
    if (!is_readable($cfgfile)) return 'config_unreadable';
    $read = function ($f) { $CONFIG = null; include $f; return $CONFIG; };
    $merged = $read($cfgfile);
    if (!is_array($merged)) return 'config_no_array';
    $files = array('config.php');
    $extra = glob("$root/config/*.config.php") ?: array();
    natsort($extra);
    foreach ($extra as $f) { $c = $read($f); $files[] = basename($f); if (is_array($c)) $merged = array_merge($merged, $c); }
    return array($merged, $files);
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
