// ocmigrate inventory: run by `php` on a host, reads an ownCloud/Nextcloud instance and prints
// one JSON object. It only reads: no file is written, the SQLite database is opened read-only,
// and the SQL is SELECT only. Secrets never leave the host: identity keys and passwords are
// replaced by a SHA-256 fingerprint. Works on PHP 7.0 and later (old sources run PHP 7.4).
// $argv[1] = instance root, $argv[2] = "full" (config + database), "release" (code only),
// "config" (the config alone: no release, services, disk, apps or database), "nodb" (all but
// the database) or "trees" (what a file pass needs to know which folders it copies: the config
// and the homes in the database; none of "full"'s scans of the file cache or the apps).
$root = rtrim($argv[1], '/');
$mode = isset($argv[2]) ? $argv[2] : 'full';
$out = array('root' => $root, 'php' => array(
    'version' => PHP_VERSION,
    'modules' => array_map('strtolower', get_loaded_extensions()),
    'user' => function_exists('posix_getpwuid') ? posix_getpwuid(posix_geteuid())['name'] : null,
));
// A secret's fingerprint: SHA-256 of a string's bytes, or of ocm_dump() of another value
// (src/instance/dump.php); the Rust reader computes the same (inventory::without_php).
function fp($v) { return $v === null ? null : substr(hash('sha256', is_string($v) ? $v : ocm_dump($v)), 0, 16); }
function info_version($file) {
    $x = @file_get_contents($file);
    if ($x !== false && preg_match('#<version>\s*([^<\s]+)\s*</version>#', $x, $m)) return $m[1];
    return null;
}

// Apps' code versions in every apps folder: the configured apps_paths when there is a config
// (below), else every apps* folder of the release (apps, apps-external, custom_apps...).
function scan_apps($paths) {
    $apps = array();
    foreach ($paths as $p) { foreach (glob("$p/*/appinfo/info.xml") ?: array() as $f) {
        $id = basename(dirname(dirname($f))); if (!isset($apps[$id])) $apps[$id] = array('path' => dirname(dirname($f)), 'version' => info_version($f));
    } }
    return $apps;
}
// The release, services, disk and apps: not in modes "config" (target-config reads only that)
// and "trees".
if ($mode !== 'config' && $mode !== 'trees') {
// The release: version.php and the apps' code versions.
$release = null;
if (is_file("$root/version.php")) {
    $release = (function ($f) { include $f; return array(
        'version' => isset($OC_Version) ? implode('.', $OC_Version) : null,
        'versionstring' => isset($OC_VersionString) ? $OC_VersionString : null,
        'edition' => isset($OC_Edition) ? $OC_Edition : null,
        'vendor' => isset($vendor) ? $vendor : null); })("$root/version.php");
}
// The PHP versions the release accepts, read from its own version checks (ownCloud's index.php
// and lib/base.php, Nextcloud's lib/versioncheck.php): PHP_VERSION_ID < N and >= N.
if ($release !== null) {
    $min = null; $max = null;
    foreach (array('lib/versioncheck.php', 'index.php', 'lib/base.php') as $f) {
        $code = @file_get_contents("$root/$f");
        if ($code === false) continue;
        if (preg_match_all('#PHP_VERSION_ID\s*<\s*(\d{5})#', $code, $m)) foreach ($m[1] as $v) $min = max((int)$min, (int)$v);
        if (preg_match_all('#PHP_VERSION_ID\s*>=\s*(\d{5})#', $code, $m)) foreach ($m[1] as $v) $max = $max === null ? (int)$v : min($max, (int)$v);
        if (preg_match_all('#version_compare\(\s*PHP_VERSION\s*,\s*\'([\d.]+)\'\s*\)\s*===\s*-1#', $code, $m)) foreach ($m[1] as $v) { $p = array_map('intval', explode('.', $v)); $min = max((int)$min, $p[0] * 10000 + (isset($p[1]) ? $p[1] : 0) * 100); }
    }
    $release['php_min'] = $min ?: null;
    $release['php_max'] = $max;
}
$out['release'] = $release;
$out['occ'] = is_file("$root/occ");

// Services as a Debian/RHEL admin controls them.
$svc = array('systemd' => is_dir('/run/systemd/system'), 'units' => array());
foreach (array('apache2', 'httpd', 'nginx') as $s) {
    if (is_file("/etc/init.d/$s") || is_file("/lib/systemd/system/$s.service") || is_file("/usr/lib/systemd/system/$s.service")) $svc['units'][] = $s;
}
foreach (array_merge(glob('/etc/init.d/php*-fpm') ?: array(), glob('/lib/systemd/system/php*-fpm.service') ?: array()) as $f) {
    $svc['units'][] = preg_replace('#\.service$#', '', basename($f));
}
$svc['units'] = array_values(array_unique($svc['units']));
$out['services'] = $svc;
$out['disk'] = array();
foreach (array($root, dirname($root), '/') as $p) { if (is_dir($p)) { $out['disk'][$p] = array('free' => @disk_free_space($p)); } }

$out['apps_code'] = (object)scan_apps(array_merge(array("$root/apps"), array_diff(glob("$root/*apps*", GLOB_ONLYDIR) ?: array(), array("$root/apps"))));
} // $mode !== 'config'

$cfgfile = "$root/config/config.php";
$out['config_exists'] = file_exists($cfgfile);
if ($mode === 'release' || !$out['config_exists']) { echo json_encode($out, JSON_PRESERVE_ZERO_FRACTION), "\n"; exit(0); }
$out['config_owner'] = function_exists('posix_getpwuid') ? posix_getpwuid(fileowner($cfgfile))['name'] : fileowner($cfgfile);
$read = ocm_read_config($root);
if (is_string($read)) { $out['error'] = $read; echo json_encode($out, JSON_PRESERVE_ZERO_FRACTION), "\n"; exit(0); }
list($merged, $files) = $read;
$out['config_files'] = $files;
$secret_keys = array('instanceid', 'secret', 'passwordsalt', 'dbpassword', 'dbuser', 'redis', 'ldap_agent_password', 'mail_smtppassword', 'license-key', 'objectstore');
$cfg = array();
foreach ($merged as $k => $v) {
    $cfg[$k] = in_array($k, $secret_keys, true) ? array('fingerprint' => fp($v)) : $v;
}
if (isset($merged['redis']) && is_array($merged['redis'])) {
    $r = $merged['redis']; unset($r['password']); $cfg['redis'] = array('fingerprint' => fp($merged['redis']), 'host' => isset($r['host']) ? $r['host'] : null, 'port' => isset($r['port']) ? $r['port'] : null);
}
if (isset($merged['objectstore'])) { $cfg['objectstore'] = array('fingerprint' => fp($merged['objectstore']), 'class' => isset($merged['objectstore']['class']) ? $merged['objectstore']['class'] : null); }
$cfg['dbuser_plain'] = isset($merged['dbuser']) ? $merged['dbuser'] : null;
$out['config'] = $cfg;
$datadir = ocm_datadir($root, $merged);
$out['datadir'] = $datadir;
if ($mode === 'config') { echo json_encode($out, JSON_PRESERVE_ZERO_FRACTION), "\n"; exit(0); }

// Apps: code versions in every configured apps path.
if ($mode !== 'trees' && isset($merged['apps_paths']) && is_array($merged['apps_paths'])) {
    $paths = array();
    foreach ($merged['apps_paths'] as $p) if (isset($p['path'])) $paths[] = $p['path'];
    $out['apps_code'] = (object)scan_apps($paths);
}
if ($mode === 'nodb') { echo json_encode($out, JSON_PRESERVE_ZERO_FRACTION), "\n"; exit(0); }

// The database, read-only.
$db = array();
try {
    list($q, $db) = ocm_db($merged, $datadir);
    $type = $db['type']; $prefix = $db['prefix'];
    $t = function ($n) use ($prefix) { return $prefix . $n; };
    // "trees" reads the homes only: the rest is a scan of whole tables on a large instance.
    if ($mode !== 'trees') {
        $db['storages'] = $q("SELECT numeric_id, id FROM {$t('storages')} ORDER BY numeric_id");
        $db['appconfig'] = $q("SELECT appid, configkey, configvalue FROM {$t('appconfig')} WHERE configkey IN ('enabled', 'installed_version') OR appid = 'core' AND configkey LIKE '%encryption%' OR appid = 'user_ldap' AND (configkey LIKE '%ldap_host' OR configkey LIKE '%ldap_port' OR configkey LIKE '%ldap_backup_host' OR configkey LIKE '%ldap_backup_port' OR configkey LIKE '%ldap_configuration_active') ORDER BY appid, configkey");
        $db['filecache'] = $q("SELECT COUNT(*) AS files, COALESCE(SUM(CASE WHEN mimetype <> (SELECT id FROM {$t('mimetypes')} WHERE mimetype = 'httpd/unix-directory') THEN size ELSE 0 END), 0) AS bytes FROM {$t('filecache')}")[0];
        $db['locks'] = $q("SELECT COUNT(*) AS n FROM {$t('file_locks')} WHERE " . ocm_ident($type, 'lock') . " <> 0")[0]['n'];
    }
    // Nextcloud has no home column (ownCloud 10 has): a failure here is kept, and judged by the
    // flavor (Inventory::homes_unread).
    try { $db['homes'] = $q("SELECT user_id, home FROM {$t('accounts')} ORDER BY user_id"); } catch (Exception $e) { $db['homes'] = null; $db['homes_error'] = $e->getMessage(); }
    if ($mode !== 'trees') try { $db['external'] = $q("SELECT m.mount_id, m.mount_point, m.storage_backend, c.value AS datadir FROM {$t('external_mounts')} m LEFT JOIN {$t('external_config')} c ON c.mount_id = m.mount_id AND c." . ocm_ident($type, 'key') . " = 'datadir'"); } catch (Exception $e) { $db['external'] = null; }
    $db['ok'] = true;
} catch (Exception $e) {
    if (!isset($db['type'])) $db = array('type' => isset($merged['dbtype']) ? $merged['dbtype'] : 'sqlite', 'prefix' => isset($merged['dbtableprefix']) ? $merged['dbtableprefix'] : 'oc_');
    $db['ok'] = false;
    $db['error'] = $e->getMessage();
}
$out['db'] = $db;
echo json_encode($out, JSON_PRESERVE_ZERO_FRACTION), "\n";
