<?php
/**
 * TEST DOUBLE developer helper (not part of any real server): make a small SQLite instance of
 * the double under a folder, for working on the double without the lab.
 *   php tests/double/dev/mkinstance.php ROOT owncloud|nextcloud
 * then e.g. php -S 127.0.0.1:8089 -t ROOT tests/double/dev/router.php
 * Users: admin/admin-pass, user1/user1-pass.
 */
[$self, $root, $flavor] = $argv + [null, null, 'owncloud'];
if (!$root) {
	fwrite(STDERR, "usage: php mkinstance.php ROOT owncloud|nextcloud\n");
	exit(2);
}
$src = dirname(__DIR__);
passthru('rm -rf ' . escapeshellarg($root) . ' && mkdir -p ' . escapeshellarg($root) . ' && cp -a ' . escapeshellarg($src) . '/. ' . escapeshellarg($root) . '/');
copy("$src/version-$flavor.php", "$root/version.php");
passthru("rm -rf " . escapeshellarg("$root/apps") . " && cp -a " . escapeshellarg("$src/dev/apps") . " " . escapeshellarg("$root/apps"));
$nc = $flavor === 'nextcloud';
$data = "$root/data";
@mkdir("$root/config", 0750, true);
@mkdir($data, 0770, true);
touch("$data/" . ($nc ? '.ncdata' : '.ocdata'));
$version = $nc ? '33.0.1.2' : '10.15.2.0';
$cfg = [
	'passwordsalt' => 'salt', 'secret' => 'sekrit', 'trusted_domains' => ['localhost', 'cloud.example.test'],
	'datadirectory' => $data, 'dbtype' => 'sqlite3', 'version' => $version,
	'overwrite.cli.url' => 'http://cloud.example.test', 'logtimezone' => 'UTC', 'instanceid' => 'ocabc123def4', 'installed' => true,
];
file_put_contents("$root/config/config.php", "<?php\n" . '$CONFIG = ' . var_export($cfg, true) . ";\n");
$db = new PDO("sqlite:$data/owncloud.db");
$db->setAttribute(PDO::ATTR_ERRMODE, PDO::ERRMODE_EXCEPTION);
$db->exec(<<<SQL
CREATE TABLE oc_storages (numeric_id INTEGER PRIMARY KEY AUTOINCREMENT, id VARCHAR(64) UNIQUE, available INT DEFAULT 1, last_checked INT);
CREATE TABLE oc_mimetypes (id INTEGER PRIMARY KEY AUTOINCREMENT, mimetype VARCHAR(255) UNIQUE);
CREATE TABLE oc_filecache (fileid INTEGER PRIMARY KEY AUTOINCREMENT, storage INT, path VARCHAR(4000), path_hash VARCHAR(32), parent BIGINT, name VARCHAR(250), mimetype INT, mimepart INT, size BIGINT, mtime BIGINT, storage_mtime BIGINT, encrypted INT DEFAULT 0, unencrypted_size BIGINT DEFAULT 0, etag VARCHAR(40), permissions INT, checksum VARCHAR(255), UNIQUE (storage, path_hash));
CREATE TABLE oc_users (uid VARCHAR(64) PRIMARY KEY, displayname VARCHAR(64), password VARCHAR(255), uid_lower VARCHAR(64));
CREATE TABLE oc_accounts (id INTEGER PRIMARY KEY AUTOINCREMENT, email VARCHAR(255), user_id VARCHAR(255) UNIQUE, lower_user_id VARCHAR(255), display_name VARCHAR(255), quota VARCHAR(32), last_login INT, backend VARCHAR(64), home VARCHAR(1024), state SMALLINT);
CREATE TABLE oc_appconfig (appid VARCHAR(32), configkey VARCHAR(64), configvalue TEXT, PRIMARY KEY (appid, configkey));
CREATE TABLE oc_authtoken (id INTEGER PRIMARY KEY AUTOINCREMENT, uid VARCHAR(64), login_name VARCHAR(255), password TEXT, name TEXT, token VARCHAR(200) UNIQUE, type SMALLINT, last_activity INT, last_check INT, remember SMALLINT);
SQL);
$ins = function ($sql, $p) use ($db) {
	$st = $db->prepare($sql);
	$st->execute($p);
	return (int)$db->lastInsertId();
};
$mimes = [];
$mime = function ($m) use (&$mimes, $ins) {
	if (!isset($mimes[$m])) {
		$mimes[$m] = $ins('INSERT INTO oc_mimetypes (mimetype) VALUES (?)', [$m]);
	}
	return $mimes[$m];
};
foreach (glob("$src/dev/apps/*/appinfo/info.xml") as $info) {
	$app = basename(dirname(dirname($info)));
	$ver = (string)simplexml_load_file($info)->version;
	$ins('INSERT INTO oc_appconfig VALUES (?,?,?)', [$app, 'installed_version', $ver]);
	$ins('INSERT INTO oc_appconfig VALUES (?,?,?)', [$app, 'enabled', 'yes']);
}
$ins('INSERT INTO oc_appconfig VALUES (?,?,?)', ['core', 'vendor', $flavor]);
$ins('INSERT INTO oc_appconfig VALUES (?,?,?)', ['core', 'first_install_version', $version]);
$ins('INSERT INTO oc_storages (id) VALUES (?)', ["local::$data/"]);
$scan = function ($storage, $abs, $path, $parent) use (&$scan, $ins, $mime, $db) {
	$dir = is_dir($abs);
	$m = $dir ? 'httpd/unix-directory' : 'text/plain';
	$id = $ins('INSERT INTO oc_filecache (storage, path, path_hash, parent, name, mimetype, mimepart, size, mtime, storage_mtime, etag, permissions, checksum) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)',
		[$storage, $path, md5($path), $parent, basename($path), $mime($m), $mime(explode('/', $m)[0]), 0, filemtime($abs), filemtime($abs), substr(md5($path . random_int(0, PHP_INT_MAX)), 0, 13), $dir ? 31 : 27, '']);
	$size = $dir ? 0 : filesize($abs);
	if ($dir) {
		foreach (scandir($abs) as $e) {
			if ($e === '.' || $e === '..') {
				continue;
			}
			$size += $scan($storage, "$abs/$e", $path === '' ? $e : "$path/$e", $id);
		}
	}
	$db->prepare('UPDATE oc_filecache SET size = ? WHERE fileid = ?')->execute([$size, $id]);
	return $size;
};
foreach (['admin', 'user1'] as $u) {
	$ins('INSERT INTO oc_users VALUES (?,?,?,?)', [$u, $u === 'admin' ? '' : 'User One', '1|' . password_hash("$u-pass", PASSWORD_BCRYPT), $u]);
	$ins('INSERT INTO oc_accounts (email, user_id, lower_user_id, display_name, quota, last_login, backend, home, state) VALUES (?,?,?,?,?,?,?,?,?)',
		["$u@example.test", $u, $u, $u === 'admin' ? 'admin' : 'User One', null, 0, 'OC\\User\\Database', "$data/$u", 1]);
	@mkdir("$data/$u/files/Documents", 0770, true);
	file_put_contents("$data/$u/files/hello.txt", "hello $u\n");
	file_put_contents("$data/$u/files/Documents/a b.txt", "doc of $u\n");
	touch("$data/$u/files/hello.txt", 1600000000);
	$st = $ins('INSERT INTO oc_storages (id) VALUES (?)', ["home::$u"]);
	$scan($st, "$data/$u", '', -1);
}
echo "instance at $root ($flavor)\n";
