<?php
/**
 * TEST DOUBLE — NOT ownCloud, NOT Nextcloud, NOT product code.
 *
 * Shared code of the ocmigrate test double of an ownCloud 10.15.2 / Nextcloud 33.0.1 server
 * (tests/double/README.md). It imitates, field for field, what real servers were observed to do
 * (/work/shared/reference/observed-servers.md): config merging and rewriting, version.php, the
 * database, the JSON log, trusted domains. The flavor comes from `$vendor` in version.php.
 * Nothing is cached between requests or commands: config is re-read every time (PHP's opcache
 * may still serve a stale config.php for up to revalidate_freq seconds, as on real servers).
 */

if (defined('OCD_LOADED')) {
	return;
}
define('OCD_LOADED', 1);
require_once __DIR__ . '/base.php';

define('OCD_ROOT', dirname(__DIR__));
define('OCD_SENSITIVE', '***REMOVED SENSITIVE VALUE***');
define('OCD_CLI', PHP_SAPI === 'cli');

/** Thrown for database trouble (status.php answers 500 then, like ownCloud). */
class OcdDbException extends Exception {
}
/** Thrown when the config cannot be written. */
class OcdHintException extends Exception {
}

// ---------------------------------------------------------------- version / flavor

function ocd_version_info(): array {
	static $info = null; // version.php is code: it does not change within one process
	if ($info !== null) {
		return $info;
	}
	$OC_Version = [0, 0, 0, 0];
	$OC_VersionString = '';
	$OC_Edition = '';
	$OC_Channel = '';
	$OC_Build = '';
	$vendor = 'owncloud';
	$file = OCD_ROOT . '/version.php';
	if (is_file($file)) {
		include $file;
	}
	$flavor = ($vendor === 'nextcloud') ? 'nextcloud' : 'owncloud';
	$info = [
		'flavor' => $flavor,
		'version' => implode('.', $OC_Version),
		'parts' => $OC_Version,
		'versionstring' => $OC_VersionString,
		'edition' => $OC_Edition,
		'channel' => $OC_Channel,
		'build' => $OC_Build,
		'productname' => $flavor === 'nextcloud' ? 'Nextcloud' : 'ownCloud',
	];
	return $info;
}

function ocd_flavor(): string {
	return ocd_version_info()['flavor'];
}

function ocd_is_nc(): bool {
	return ocd_flavor() === 'nextcloud';
}

function ocd_product(): string {
	return ocd_version_info()['productname'];
}

// ---------------------------------------------------------------- config

function ocd_config_dir(): string {
	return OCD_ROOT . '/config/';
}

function ocd_config_file(): string {
	return ocd_config_dir() . 'config.php';
}

/** The merged system config: config.php, then every *.config.php (natsort), array_merge. */
function ocd_config(bool $reload = false): array {
	static $cache = null;
	if ($cache !== null && !$reload) {
		return $cache;
	}
	$files = [ocd_config_file()];
	$extra = glob(ocd_config_dir() . '*.config.php');
	if (is_array($extra)) {
		natsort($extra);
		$files = array_merge($files, array_values($extra));
	}
	$merged = [];
	foreach ($files as $file) {
		if (!file_exists($file)) {
			continue;
		}
		$fp = @fopen($file, 'r');
		if ($fp === false) {
			continue;
		}
		@flock($fp, LOCK_SH);
		$CONFIG = null;
		include $file;
		if (isset($CONFIG) && is_array($CONFIG)) {
			$merged = array_merge($merged, $CONFIG);
		}
		@flock($fp, LOCK_UN);
		fclose($fp);
	}
	$cache = $merged;
	return $merged;
}

function ocd_cfg(string $key, $default = null) {
	$c = ocd_config();
	return array_key_exists($key, $c) ? $c[$key] : $default;
}

/** Rewrite config.php from the merged config with one key changed, as ownCloud's Config::writeData(). */
function ocd_config_set(string $key, $value, bool $delete = false): void {
	$cfg = ocd_config(true);
	if (!empty($cfg['config_is_read_only'])) {
		if (ocd_is_nc()) {
			throw new OcdHintException('Config is set to be read-only via option "config_is_read_only".');
		}
		if (($cfg['operation.mode'] ?? 'single-instance') === 'single-instance') {
			throw new OcdHintException('Config file is read only.');
		}
	}
	if ($delete) {
		unset($cfg[$key]);
	} else {
		$cfg[$key] = $value;
	}
	$file = ocd_config_file();
	$content = "<?php\n" . '$CONFIG = ' . var_export($cfg, true) . ";\n";
	// 'c' then truncate under the lock, so readers holding LOCK_SH never see a half-written file
	$fp = @fopen($file, 'c');
	if ($fp === false) {
		throw new OcdHintException("Can't write into config directory!");
	}
	if (!flock($fp, LOCK_EX)) {
		fclose($fp);
		throw new OcdHintException('Could not acquire an exclusive lock on the config file ' . $file);
	}
	ftruncate($fp, 0);
	fwrite($fp, $content);
	fflush($fp);
	flock($fp, LOCK_UN);
	fclose($fp);
	@chmod($file, 0640);
	if (function_exists('opcache_invalidate')) {
		@opcache_invalidate($file, true);
	}
	ocd_config(true);
}

function ocd_installed(): bool {
	return (bool)ocd_cfg('installed', false);
}

function ocd_maintenance(): bool {
	return (bool)ocd_cfg('maintenance', false);
}

function ocd_datadir(): string {
	return rtrim((string)ocd_cfg('datadirectory', OCD_ROOT . '/data'), '/');
}

function ocd_prefix(): string {
	return (string)ocd_cfg('dbtableprefix', 'oc_');
}

/** Mask secrets the way `occ config:list system` does for this flavor. */
function ocd_mask_config(array $cfg): array {
	if (ocd_is_nc()) {
		$sensitive = [
			'instanceid' => true, 'datadirectory' => true, 'dbname' => true, 'dbhost' => true,
			'dbpassword' => true, 'dbuser' => true, 'dbreplica' => true, 'mail_smtpname' => true,
			'mail_smtppassword' => true, 'passwordsalt' => true, 'secret' => true,
			'updater.secret' => true, 'updater.server.url' => true, 'trusted_proxies' => true,
			'proxyuserpwd' => true, 'ldap_agent_password' => true, 'license-key' => true,
			'memcached_servers' => true, 'sentry.dsn' => true,
			'log.condition' => ['shared_secret' => true, 'matches' => true],
			'redis' => ['host' => true, 'password' => true],
			'redis.cluster' => ['seeds' => true, 'password' => true],
			'objectstore' => ['arguments' => ['password' => true, 'key' => true, 'secret' => true,
				'options' => ['credentials' => ['key' => true, 'secret' => true]]]],
		];
	} else {
		$sensitive = [
			'dbpassword' => true, 'dbuser' => true, 'mail_smtpname' => true,
			'mail_smtppassword' => true, 'passwordsalt' => true, 'secret' => true,
			'updater.secret' => true, 'ldap_agent_password' => true, 'proxyuserpwd' => true,
			'license-key' => true,
			'log.condition' => ['shared_secret' => true],
			'redis' => ['password' => true],
			'objectstore' => ['arguments' => ['password' => true,
				'options' => ['credentials' => ['key' => true, 'secret' => true]]]],
		];
	}
	$out = ocd_mask_walk($cfg, $sensitive);
	if (!ocd_is_nc() && isset($out['log.conditions']) && is_array($out['log.conditions'])) {
		foreach ($out['log.conditions'] as $i => $c) {
			if (is_array($c) && isset($c['shared_secret'])) {
				$out['log.conditions'][$i]['shared_secret'] = OCD_SENSITIVE;
			}
		}
	}
	return $out;
}

function ocd_mask_walk(array $values, array $sensitive): array {
	foreach ($sensitive as $key => $rule) {
		if (!array_key_exists($key, $values)) {
			continue;
		}
		if ($rule === true) {
			$values[$key] = OCD_SENSITIVE;
		} elseif (is_array($rule) && is_array($values[$key])) {
			$values[$key] = ocd_mask_walk($values[$key], $rule);
		}
	}
	return $values;
}

// ---------------------------------------------------------------- database

function ocd_db(): PDO {
	static $pdo = null;
	if ($pdo !== null) {
		return $pdo;
	}
	$type = (string)ocd_cfg('dbtype', 'sqlite');
	$name = (string)ocd_cfg('dbname', 'owncloud');
	$host = (string)ocd_cfg('dbhost', '');
	$user = (string)ocd_cfg('dbuser', '');
	$pass = (string)ocd_cfg('dbpassword', '');
	$opts = [PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION, PDO::ATTR_TIMEOUT => 10];
	try {
		switch ($type) {
			case 'sqlite':
			case 'sqlite3':
				$file = ocd_datadir() . '/' . $name . '.db';
				if (!is_file($file)) {
					throw new OcdDbException("SQLite database $file does not exist");
				}
				$pdo = new PDO('sqlite:' . $file, null, null, $opts);
				$pdo->exec('PRAGMA busy_timeout = 10000');
				break;
			case 'mysql':
				[$h, $port, $socket] = ocd_split_dbhost($host);
				$dsn = 'mysql:dbname=' . $name;
				if ($socket !== null) {
					$dsn .= ';unix_socket=' . $socket;
				} else {
					$dsn .= ';host=' . ($h === '' ? 'localhost' : $h);
					if ($port !== null) {
						$dsn .= ';port=' . $port;
					}
				}
				$dsn .= ';charset=' . (ocd_cfg('mysql.utf8mb4', false) ? 'utf8mb4' : 'utf8');
				$pdo = new PDO($dsn, $user, $pass, $opts);
				break;
			case 'pgsql':
				[$h, $port, $socket] = ocd_split_dbhost($host);
				$dsn = 'pgsql:dbname=' . $name;
				if ($socket !== null) {
					$dsn .= ';host=' . $socket;
				} elseif ($h !== '') {
					$dsn .= ';host=' . $h;
				}
				if ($port !== null) {
					$dsn .= ';port=' . $port;
				}
				$pdo = new PDO($dsn, $user, $pass, $opts);
				break;
			default:
				throw new OcdDbException("Database type $type is not supported by the test double");
		}
	} catch (PDOException $e) {
		$pdo = null;
		throw new OcdDbException('Failed to connect to the database: ' . $e->getMessage(), 0, $e);
	}
	return $pdo;
}

/** Split dbhost on the first ':' as ownCloud does: digits → port, otherwise a unix socket. */
function ocd_split_dbhost(string $host): array {
	$port = null;
	$socket = null;
	if (strlen($host) > 0 && $host[0] === '/') {
		return ['', null, $host];
	}
	$pos = strpos($host, ':');
	if ($pos !== false) {
		$rest = substr($host, $pos + 1);
		$host = substr($host, 0, $pos);
		if ($rest !== '' && ctype_digit($rest)) {
			$port = $rest;
		} elseif ($rest !== '') {
			$socket = $rest;
		}
	}
	return [$host, $port, $socket];
}

function ocd_q(string $sql, array $params = []): array {
	$sql = str_replace('*PREFIX*', ocd_prefix(), $sql);
	try {
		$st = ocd_db()->prepare($sql);
		$st->execute($params);
		return $st->fetchAll(PDO::FETCH_ASSOC);
	} catch (PDOException $e) {
		throw new OcdDbException($e->getMessage(), 0, $e);
	}
}

function ocd_exec(string $sql, array $params = []): int {
	$sql = str_replace('*PREFIX*', ocd_prefix(), $sql);
	try {
		$st = ocd_db()->prepare($sql);
		$st->execute($params);
		return $st->rowCount();
	} catch (PDOException $e) {
		throw new OcdDbException($e->getMessage(), 0, $e);
	}
}

/** oc_appconfig as [app => [key => value]]. */
function ocd_appconfig(): array {
	$out = [];
	foreach (ocd_q('SELECT appid, configkey, configvalue FROM *PREFIX*appconfig') as $r) {
		$out[$r['appid']][$r['configkey']] = $r['configvalue'];
	}
	return $out;
}

// ---------------------------------------------------------------- apps

/** App code folders: apps_paths from config, or apps/ (+ apps-external/ when present). */
function ocd_app_roots(): array {
	$roots = [];
	$paths = ocd_cfg('apps_paths', null);
	if (is_array($paths) && $paths) {
		foreach ($paths as $p) {
			if (is_array($p) && isset($p['path'])) {
				$roots[] = rtrim($p['path'], '/');
			}
		}
	} else {
		$roots[] = OCD_ROOT . '/apps';
		if (is_dir(OCD_ROOT . '/apps-external')) {
			$roots[] = OCD_ROOT . '/apps-external';
		}
	}
	return $roots;
}

/** Code version of every app found in the app folders: [app => version]. */
function ocd_code_apps(): array {
	$apps = [];
	foreach (ocd_app_roots() as $root) {
		foreach (glob($root . '/*/appinfo/info.xml') ?: [] as $info) {
			$id = basename(dirname(dirname($info)));
			if (isset($apps[$id])) {
				continue;
			}
			$xml = @simplexml_load_file($info);
			$apps[$id] = ($xml !== false && isset($xml->version)) ? trim((string)$xml->version) : '';
		}
	}
	ksort($apps);
	return $apps;
}

/** Apps enabled in oc_appconfig (`enabled` set and not "no"). */
function ocd_enabled_apps(array $appconfig): array {
	$out = [];
	foreach ($appconfig as $app => $keys) {
		if (isset($keys['enabled']) && $keys['enabled'] !== 'no') {
			$out[] = $app;
		}
	}
	sort($out);
	return $out;
}

/**
 * ownCloud's OC_Util::needUpgrade(): code newer than config `version` → true; older → the
 * "Downgrading is not supported" exception; an enabled app whose code version differs from its
 * installed_version → true.
 */
function ocd_needs_upgrade(): bool {
	if (!ocd_installed()) {
		return false;
	}
	$installed = (string)ocd_cfg('version', '0.0.0');
	$code = ocd_version_info()['version'];
	$diff = version_compare($code, $installed);
	if ($diff > 0) {
		return true;
	}
	if ($diff < 0) {
		throw new OcdHintException('Downgrading is not supported and is likely to cause unpredictable issues (from ' . $installed . ' to ' . $code . ')');
	}
	$appconfig = ocd_appconfig();
	$code_apps = ocd_code_apps();
	foreach (ocd_enabled_apps($appconfig) as $app) {
		if (!isset($code_apps[$app]) || $code_apps[$app] === '') {
			continue;
		}
		if (isset($appconfig[$app]['installed_version'])
			&& !version_compare($code_apps[$app], $appconfig[$app]['installed_version'], '=')) {
			return true;
		}
	}
	return false;
}

function ocd_status_values(): array {
	$v = ocd_version_info();
	$installed = ocd_installed();
	$needs = $installed ? ocd_needs_upgrade() : false;
	if (ocd_is_nc()) {
		return [
			'installed' => $installed,
			'maintenance' => ocd_maintenance(),
			'needsDbUpgrade' => $needs,
			'version' => $v['version'],
			'versionstring' => $v['versionstring'],
			'edition' => $v['edition'],
			'productname' => 'Nextcloud',
			'extendedSupport' => false,
		];
	}
	return [
		'installed' => $installed,
		'maintenance' => ocd_maintenance(),
		'needsDbUpgrade' => $needs,
		'version' => $v['version'],
		'versionstring' => $v['versionstring'],
		'edition' => $v['edition'],
		'productname' => 'ownCloud',
		'product' => 'ownCloud',
	];
}

// ---------------------------------------------------------------- request

function ocd_request_id(): string {
	static $id = null;
	if ($id === null) {
		$chars = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
		$id = '';
		for ($i = 0; $i < 20; $i++) {
			$id .= $chars[random_int(0, strlen($chars) - 1)];
		}
	}
	return $id;
}

/** The authenticated user of this request (set by ocd_basic_auth()). */
function ocd_current_user(?string $set = null, bool $clear = false): ?string {
	static $user = null;
	if ($clear) {
		$user = null;
	} elseif ($set !== null) {
		$user = $set;
	}
	return $user;
}

function ocd_path_info(): string {
	if (isset($_SERVER['PATH_INFO']) && $_SERVER['PATH_INFO'] !== '') {
		return $_SERVER['PATH_INFO'];
	}
	$uri = $_SERVER['REQUEST_URI'] ?? '';
	$q = strpos($uri, '?');
	if ($q !== false) {
		$uri = substr($uri, 0, $q);
	}
	$uri = rawurldecode($uri);
	$script = $_SERVER['SCRIPT_NAME'] ?? '';
	if ($script !== '' && strpos($uri, $script) === 0) {
		return substr($uri, strlen($script));
	}
	return '';
}

function ocd_host(): string {
	return (string)($_SERVER['HTTP_HOST'] ?? ($_SERVER['SERVER_NAME'] ?? 'localhost'));
}

function ocd_host_without_port(string $host): string {
	$pos = strrpos($host, ':');
	if ($pos !== false) {
		$port = substr($host, $pos + 1);
		if (is_numeric($port)) {
			$host = substr($host, 0, $pos);
		}
	}
	return $host;
}

function ocd_is_trusted_domain(string $host): bool {
	$domain = ocd_host_without_port($host);
	if (preg_match('/^(127\.0\.0\.1|localhost)$/', $domain) === 1) {
		return true;
	}
	$trusted = ocd_cfg('trusted_domains', []);
	if (!is_array($trusted)) {
		return false;
	}
	if (ocd_is_nc()) {
		foreach ($trusted as $t) {
			$regex = '/^' . implode('[-\.a-zA-Z0-9]*', array_map(function ($v) {
				return preg_quote($v, '/');
			}, explode('*', (string)$t))) . '$/i';
			if (preg_match($regex, $domain) === 1) {
				return true;
			}
		}
		return false;
	}
	return in_array($domain, $trusted, true);
}

function ocd_html_escape(string $s): string {
	return htmlspecialchars($s, ENT_QUOTES | ENT_SUBSTITUTE, 'UTF-8');
}

/** A minimal guest page (the real ones are full HTML templates). */
function ocd_guest_page(string $title, string $body): string {
	return "<!DOCTYPE html>\n<html class=\"ng-csp\" data-placeholder-focus=\"false\" lang=\"en\" >\n<head data-requesttoken=\"\">\n"
		. "<meta charset=\"utf-8\">\n<title>" . ocd_html_escape($title) . "</title>\n"
		. "<!-- test double of " . ocd_product() . ", see tests/double/README.md -->\n"
		. "</head>\n<body id=\"body-login\">\n<div class=\"wrapper\">\n<div class=\"v-align\">\n"
		. $body
		. "</div>\n</div>\n</body>\n</html>\n";
}

/**
 * What every web entry point does first (OC::init()): the trusted-domain check. Returns only
 * when the request may go on.
 */
function ocd_web_init(string $entry): void {
	ocd_config(true);
	register_shutdown_function('ocd_request_debug_line');
	if (!ocd_installed()) {
		return;
	}
	$host = ocd_host();
	$nc = ocd_is_nc();
	if (!$nc && (string)ocd_cfg('overwritehost', '') !== '') {
		return; // ownCloud: overwritehost is always trusted
	}
	if (ocd_is_trusted_domain($host)) {
		return;
	}
	$remote = $_SERVER['REMOTE_ADDR'] ?? '';
	if ($nc) {
		if ($entry === 'status.php') {
			http_response_code(400);
			header('Content-Type: application/json');
			echo '{"error": "Trusted domain error.", "code": 15}';
			exit();
		}
		http_response_code(400);
		ocd_log(1, 'core', 'Trusted domain error. "' . $remote . '" tried to access using "' . $host . '" as host.');
		header('Content-Type: text/html; charset=utf-8');
		echo ocd_guest_page('Nextcloud', "<div class=\"guest-box\">\n<h2>Access through untrusted domain</h2>\n"
			. "<p>Please contact your administrator. If you are an administrator, edit the \"trusted_domains\" setting in config/config.php like the example in config.sample.php.</p>\n"
			. "<p>Further information how to configure this can be found in the documentation.</p>\n</div>\n");
		exit();
	}
	header('HTTP/1.1 400 Bad Request');
	header('Status: 400 Bad Request');
	ocd_log(2, 'core', 'Trusted domain error. "' . $remote . '" tried to access using "' . $host . '" as host.');
	header('Content-Type: text/html; charset=utf-8');
	echo ocd_guest_page('ownCloud', "<ul class=\"error-wide\">\n<li class='error'>\n"
		. "You are accessing the server from an untrusted domain.<br/>\n"
		. "<p class='hint'>Please contact your administrator. If you are an administrator of this instance, configure the \"trusted_domains\" setting in config/config.php. An example configuration is provided in config/config.sample.php.</p>\n"
		. "<br/><p class='hint'>Depending on your configuration, as an administrator you might also be able to use the button below to trust this domain.</p>\n"
		. "<p class='hint'><a href=\"http://" . ocd_html_escape($host) . "/index.php/settings/admin?trustDomain=" . ocd_html_escape($host) . "\" class=\"button\">Add \"" . ocd_html_escape($host) . "\" as trusted domain</a></p>\n"
		. "</li>\n</ul>\n");
	exit();
}

/** HTTP Basic credentials of the request, or null. */
function ocd_basic_credentials(): ?array {
	if (isset($_SERVER['PHP_AUTH_USER'])) {
		return [(string)$_SERVER['PHP_AUTH_USER'], (string)($_SERVER['PHP_AUTH_PW'] ?? '')];
	}
	$h = $_SERVER['HTTP_AUTHORIZATION'] ?? ($_SERVER['REDIRECT_HTTP_AUTHORIZATION'] ?? '');
	if (stripos($h, 'basic ') === 0) {
		$dec = base64_decode(substr($h, 6), true);
		if ($dec !== false && strpos($dec, ':') !== false) {
			return explode(':', $dec, 2);
		}
	}
	return null;
}

/**
 * Check a login name and password against oc_users (`N|` + bcrypt, or a bare hash) and app
 * passwords in oc_authtoken (sha512 of token . secret). Returns the uid or null.
 */
function ocd_check_password(string $login, string $password): ?string {
	if ($login === '' || $password === '') {
		return null;
	}
	$rows = ocd_q('SELECT uid, password FROM *PREFIX*users WHERE uid = ? OR LOWER(uid) = ?', [$login, strtolower($login)]);
	foreach ($rows as $r) {
		$hash = (string)$r['password'];
		if (preg_match('/^\d+\|(.*)$/s', $hash, $m)) {
			$hash = $m[1];
		}
		if ($hash !== '' && password_verify($password, $hash)) {
			return $r['uid'];
		}
	}
	$secret = (string)ocd_cfg('secret', '');
	try {
		$t = ocd_q('SELECT uid, login_name FROM *PREFIX*authtoken WHERE token = ?', [hash('sha512', $password . $secret)]);
	} catch (OcdDbException $e) {
		$t = [];
	}
	foreach ($t as $r) {
		if (strtolower((string)$r['login_name']) === strtolower($login) || strtolower((string)$r['uid']) === strtolower($login)) {
			return $r['uid'];
		}
	}
	return null;
}

/**
 * Basic auth for DAV/OCS: 'ok' (user set), 'none' (no credentials) or 'failed' (logged like
 * ownCloud: WARN "Login failed: 'x' (Remote IP: 'y')").
 */
function ocd_basic_auth(): string {
	$cred = ocd_basic_credentials();
	if ($cred === null) {
		return 'none';
	}
	[$login, $password] = $cred;
	$uid = ocd_check_password($login, $password);
	if ($uid === null) {
		ocd_log(2, 'core', "Login failed: '" . $login . "' (Remote IP: '" . ($_SERVER['REMOTE_ADDR'] ?? '') . "')");
		return 'failed';
	}
	ocd_current_user($uid);
	return 'ok';
}

function ocd_display_name(string $uid): string {
	if (!ocd_is_nc()) {
		try {
			$r = ocd_q('SELECT display_name FROM *PREFIX*accounts WHERE user_id = ?', [$uid]);
			if ($r && (string)$r[0]['display_name'] !== '') {
				return (string)$r[0]['display_name'];
			}
		} catch (OcdDbException $e) {
		}
	}
	$r = ocd_q('SELECT displayname FROM *PREFIX*users WHERE uid = ?', [$uid]);
	if ($r && (string)$r[0]['displayname'] !== '') {
		return (string)$r[0]['displayname'];
	}
	return $uid;
}

function ocd_email(string $uid): ?string {
	if (ocd_is_nc()) {
		return null;
	}
	try {
		$r = ocd_q('SELECT email FROM *PREFIX*accounts WHERE user_id = ?', [$uid]);
		if ($r && $r[0]['email'] !== null && $r[0]['email'] !== '') {
			return (string)$r[0]['email'];
		}
	} catch (OcdDbException $e) {
	}
	return null;
}

// ---------------------------------------------------------------- logging

/** The log file: `logfile`, or <datadir>/owncloud.log (nextcloud.log), with ownCloud's fallback. */
function ocd_log_file(): string {
	$default = ocd_datadir() . '/' . (ocd_is_nc() ? 'nextcloud.log' : 'owncloud.log');
	$file = (string)ocd_cfg('logfile', $default);
	if ($file === '') {
		$file = $default;
	}
	if (!file_exists($file)) {
		if (!is_writable(dirname($file)) || !@touch($file)) {
			$file = $default;
		}
	}
	return $file;
}

/** Lowest level that is written for this message (log.condition / log.conditions, loglevel). */
function ocd_min_level(string $app, string $message, ?string &$condFile): int {
	$condFile = null;
	$level = min((int)ocd_cfg('loglevel', 2), 4);
	$user = ocd_current_user();
	$secret = ocd_log_secret_param();
	if (ocd_is_nc()) {
		$c = ocd_cfg('log.condition', []);
		if (!is_array($c) || !$c) {
			return $level;
		}
		if (isset($c['shared_secret']) && hash_equals((string)$c['shared_secret'], $secret)) {
			return 0;
		}
		if (isset($c['users']) && is_array($c['users']) && $user !== null && in_array($user, $c['users'], true)) {
			return 0;
		}
		if (isset($c['matches']) && is_array($c['matches'])) {
			foreach ($c['matches'] as $o) {
				if ((!isset($o['shared_secret']) || hash_equals((string)$o['shared_secret'], $secret))
					&& (!isset($o['users']) || ($user !== null && in_array($user, (array)$o['users'], true)))
					&& (!isset($o['apps']) || in_array($app, (array)$o['apps'], true))
					&& (!isset($o['message']) || strpos($message, (string)$o['message']) !== false)) {
					return (int)($o['loglevel'] ?? 0);
				}
			}
		}
		if (isset($c['apps']) && is_array($c['apps']) && in_array($app, $c['apps'], true)) {
			return 0;
		}
		return $level;
	}
	// ownCloud: log.conditions (a list), or else the single log.condition; any condition that
	// holds (app, shared_secret vs the log_secret request parameter, or user) means DEBUG.
	$conds = ocd_cfg('log.conditions', []);
	if (!is_array($conds) || !$conds) {
		$conds = [ocd_cfg('log.condition', [])];
	}
	foreach ($conds as $c) {
		if (!is_array($c)) {
			continue;
		}
		if (!empty($c['apps']) && is_array($c['apps']) && in_array($app, $c['apps'], true)) {
			$level = 0;
			if (!empty($c['logfile'])) {
				$condFile = (string)$c['logfile'];
				break;
			}
		}
	}
	foreach ($conds as $c) {
		if (!is_array($c)) {
			continue;
		}
		if (!empty($c['shared_secret']) && hash_equals((string)$c['shared_secret'], $secret)) {
			$level = 0;
			if (!empty($c['logfile'])) {
				$condFile = (string)$c['logfile'];
			}
			break;
		}
		if (!empty($c['users']) && is_array($c['users']) && $user !== null && in_array($user, $c['users'], true)) {
			$level = 0;
			if (!empty($c['logfile'])) {
				$condFile = (string)$c['logfile'];
			}
			break;
		}
	}
	return $level;
}

function ocd_log_secret_param(): string {
	if (OCD_CLI) {
		return '';
	}
	$v = $_GET['log_secret'] ?? ($_POST['log_secret'] ?? '');
	return is_string($v) ? $v : '';
}

/**
 * Write one log line in the flavor's JSON format when $level passes the configured level.
 * $exception: ['Exception'=>class, 'Message'=>msg, ...] (Nextcloud: logged as "exception").
 */
function ocd_log(int $level, string $app, string $message, ?array $exception = null): void {
	try {
		if (!ocd_cfg('installed', false) && !file_exists(ocd_config_file())) {
			return;
		}
		$condFile = null;
		if ($level < ocd_min_level($app, $message, $condFile)) {
			return;
		}
		$tz = (string)ocd_cfg('logtimezone', 'UTC');
		try {
			$zone = new DateTimeZone($tz);
		} catch (Exception $e) {
			$zone = new DateTimeZone('UTC');
		}
		$time = DateTime::createFromFormat('U.u', number_format(microtime(true), 4, '.', ''));
		$time->setTimezone($zone);
		$time = $time->format((string)ocd_cfg('logdateformat', ocd_is_nc() ? DateTimeInterface::ATOM : 'c'));
		$user = ocd_installed() ? (ocd_current_user() ?? '--') : '--';
		$reqId = ocd_request_id();
		$remoteAddr = OCD_CLI ? '' : (string)($_SERVER['REMOTE_ADDR'] ?? '');
		$uri = OCD_CLI ? '' : (string)($_SERVER['REQUEST_URI'] ?? '');
		$url = $uri !== '' ? $uri : '--';
		if (ocd_is_nc()) {
			$method = OCD_CLI ? '' : (string)($_SERVER['REQUEST_METHOD'] ?? '');
			$entry = [
				'reqId' => $reqId, 'level' => $level, 'time' => $time, 'remoteAddr' => $remoteAddr,
				'user' => $user, 'app' => $app, 'method' => $method, 'url' => $url,
				'scriptName' => OCD_CLI ? ($_SERVER['SCRIPT_NAME'] ?? 'occ') : (string)($_SERVER['SCRIPT_NAME'] ?? ''),
				'message' => $message,
				'userAgent' => OCD_CLI ? '--' : (string)($_SERVER['HTTP_USER_AGENT'] ?? '--'),
				'version' => (string)ocd_cfg('version', ''),
			];
			if (OCD_CLI) {
				$entry['occ_command'] = $_SERVER['argv'] ?? [];
			}
			if ($exception !== null) {
				$entry['exception'] = $exception;
			} else {
				$entry['data'] = ['app' => $app];
			}
			$line = json_encode($entry, JSON_PARTIAL_OUTPUT_ON_ERROR | JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE);
		} else {
			$method = (!OCD_CLI && isset($_SERVER['REQUEST_METHOD'])) ? (string)$_SERVER['REQUEST_METHOD'] : '--';
			$entry = [
				'reqId' => $reqId, 'level' => $level, 'time' => $time, 'remoteAddr' => $remoteAddr,
				'user' => $user, 'app' => $app, 'method' => $method, 'url' => $url,
				'message' => $message,
			];
			$line = json_encode($entry, JSON_PARTIAL_OUTPUT_ON_ERROR);
		}
		if ($condFile !== null) {
			$file = $condFile[0] === '/' ? $condFile : ocd_datadir() . '/' . $condFile;
		} else {
			$file = ocd_log_file();
		}
		$fp = @fopen($file, 'a');
		if ($fp) {
			@chmod($file, 0640);
			fwrite($fp, $line . "\n");
			fclose($fp);
		} elseif (!OCD_CLI) {
			@error_log($line);
		}
	} catch (Throwable $e) {
		// logging never breaks a request
	}
}

/** Set by entry points: the HTTP status the request ended with (for the debug line). */
function ocd_request_status(?int $set = null): int {
	static $status = 200;
	if ($set !== null) {
		$status = $set;
	}
	return $status;
}

/**
 * The test double's own debug-level line, written at the end of every web request when the
 * level allows it (loglevel 0, or a log condition such as ?log_secret= matched), so a forced
 * debug probe always leaves a trace. Real servers log other debug messages; see README.md.
 */
function ocd_request_debug_line(): void {
	$code = http_response_code();
	ocd_log(0, 'core', 'Request ' . ($_SERVER['REQUEST_METHOD'] ?? '--') . ' ' . ($_SERVER['SCRIPT_NAME'] ?? '') . ' answered ' . ($code === false ? 200 : $code) . ' (ocmigrate test double)');
}

// ---------------------------------------------------------------- responses

function ocd_maintenance_page(): void {
	$p = ocd_product();
	http_response_code(503);
	header('Status: 503 Service Temporarily Unavailable');
	header('Retry-After: 120');
	if (ocd_is_nc()) {
		header('X-Nextcloud-Maintenance-Mode: 1');
	}
	header('Content-Type: text/html; charset=utf-8');
	if (ocd_is_nc()) {
		$body = "<div class=\"guest-box\">\n<h2>Maintenance mode</h2>\n"
			. "<p>This Nextcloud instance is currently in maintenance mode, which may take a while. This page will refresh itself when the instance is available again.</p>\n"
			. "<p>Contact your system administrator if this message persists or appeared unexpectedly.</p>\n</div>\n";
	} else {
		$body = "<ul>\n<li class=\"update\">\n"
			. "This ownCloud instance is currently in maintenance mode, which may take a while.<br/><br/>\n"
			. "This page will refresh itself when the ownCloud instance is available again.<br/><br/>\n"
			. "Contact your system administrator if this message persists or appeared unexpectedly.<br/><br/>\n"
			. "Thank you for your patience.<br/><br/>\n</li>\n</ul>\n";
	}
	echo ocd_guest_page($p, $body);
}

/** A Sabre-style XML error body. */
function ocd_sabre_error(int $code, string $exception, string $message, array $headers = []): void {
	http_response_code($code);
	header('Content-Type: application/xml; charset=utf-8');
	foreach ($headers as $h) {
		header($h, false);
	}
	echo "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
		. "<d:error xmlns:d=\"DAV:\" xmlns:s=\"http://sabredav.org/ns\">\n"
		. "  <s:exception>" . htmlspecialchars($exception, ENT_XML1) . "</s:exception>\n"
		. "  <s:message>" . htmlspecialchars($message, ENT_XML1) . "</s:message>\n"
		. "</d:error>\n";
}

/** An exception as ownCloud/Nextcloud put it in a log line. */
function ocd_exception_array(string $class, string $message, string $file, int $line): array {
	return [
		'Exception' => $class,
		'Message' => $message,
		'Code' => 0,
		'Trace' => [],
		'File' => $file,
		'Line' => $line,
	];
}
