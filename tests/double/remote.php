<?php
/**
 * TEST DOUBLE — NOT ownCloud, NOT Nextcloud (see tests/double/README.md).
 * remote.php of the ocmigrate test double: WebDAV at /remote.php/dav/files/<user>/<path> and the
 * legacy /remote.php/webdav/<path>. PROPFIND (Depth 0/1), GET/HEAD, PUT and MKCOL, answered from
 * oc_filecache and <datadir>/<user>/files like the real servers; maintenance → 503 (before auth,
 * like the MaintenancePlugin); Basic auth against oc_users; Sabre-style XML errors.
 */
require_once __DIR__ . '/lib/double.php';

ocd_web_init('remote.php');

$nc = ocd_is_nc();
$method = strtoupper($_SERVER['REQUEST_METHOD'] ?? 'GET');
$pathInfo = ocd_path_info();

/** Level-0 "Exception: {…}" line as ownCloud's ExceptionLoggerPlugin writes for non-fatal DAV exceptions. */
function ocd_dav_nonfatal(string $class, string $message): void {
	if (ocd_is_nc()) {
		ocd_log(0, 'webdav', $message, ocd_exception_array($class, $message, OCD_ROOT . '/remote.php', 0) + ['CustomMessage' => '--']);
		return;
	}
	ocd_log(0, 'webdav', 'Exception: ' . json_encode([
		'Message' => $message, 'Exception' => $class, 'Code' => 0, 'Trace' => '', 'File' => OCD_ROOT . '/remote.php', 'Line' => 0,
	]));
}

function ocd_dav_not_found(string $message): void {
	ocd_dav_nonfatal('Sabre\\DAV\\Exception\\NotFound', $message);
	ocd_sabre_error(404, 'Sabre\\DAV\\Exception\\NotFound', $message);
	exit();
}

// ---------------------------------------------------------------- routing

if (!ocd_installed()) {
	ocd_sabre_error(503, 'Sabre\\DAV\\Exception\\ServiceUnavailable', 'Service unavailable');
	exit();
}
try {
	$upgrade = ocd_needs_upgrade();
} catch (Throwable $e) {
	ocd_log(4, 'remote', $e->getMessage());
	ocd_sabre_error(503, 'Sabre\\DAV\\Exception\\ServiceUnavailable', $e instanceof OcdHintException ? $e->getMessage() : 'Service unavailable');
	exit();
}
if ($upgrade) {
	ocd_sabre_error(503, 'Sabre\\DAV\\Exception\\ServiceUnavailable', 'Service unavailable');
	exit();
}

// base URL of the tree and the user/path it names
$urlUser = null;
if (preg_match('#^/webdav(/.*)?$#', $pathInfo, $m)) {
	$base = '/remote.php/webdav';
	$rel = $m[1] ?? '';
} elseif (preg_match('#^/dav/files/([^/]+)(/.*)?$#', $pathInfo, $m)) {
	$urlUser = $m[1];
	$base = '/remote.php/dav/files/' . rawurlencode($urlUser);
	$rel = $m[2] ?? '';
} elseif (preg_match('#^/dav(/.*)?$#', $pathInfo)) {
	$base = null;
	$rel = '';
} else {
	// unknown service
	if (ocd_maintenance()) {
		ocd_dav_maintenance();
	}
	ocd_sabre_error(404, 'Sabre\\DAV\\Exception\\NotFound', 'Service unavailable');
	exit();
}

function ocd_dav_maintenance(): void {
	if (ocd_is_nc()) {
		ocd_log(3, 'webdav', 'Uncaught exception', ocd_exception_array('OCA\\DAV\\Exception\\ServerMaintenanceMode', 'System is in maintenance mode.', OCD_ROOT . '/apps/dav/lib/Connector/Sabre/MaintenancePlugin.php', 82) + ['CustomMessage' => 'Uncaught exception']);
		ocd_sabre_error(503, 'OCA\\DAV\\Exception\\ServerMaintenanceMode', 'System is in maintenance mode.');
	} else {
		ocd_dav_nonfatal('Sabre\\DAV\\Exception\\ServiceUnavailable', 'System in maintenance mode.');
		ocd_sabre_error(503, 'Sabre\\DAV\\Exception\\ServiceUnavailable', 'System in maintenance mode.');
	}
	exit();
}

if (ocd_maintenance()) {
	ocd_dav_maintenance();
}

// ---------------------------------------------------------------- auth

$auth = ocd_basic_auth();
if ($auth !== 'ok') {
	if ($nc) {
		$reasons = ['No public access to this resource.', 'AppAPIAuth has not passed', 'This request is not for a federated calendar'];
	} else {
		$reasons = ['No public access to this resource.'];
	}
	$reasons[] = ($auth === 'none')
		? "No 'Authorization: Basic' header found. Either the client didn't send one, or the server couldn't read it"
		: 'Username or password was incorrect';
	$reasons[] = "No 'Authorization: Bearer' header found. Either the client didn't send one, or the server couldn't read it";
	$msg = implode(', ', $reasons);
	ocd_dav_nonfatal('Sabre\\DAV\\Exception\\NotAuthenticated', $msg);
	$headers = [];
	if (($_SERVER['HTTP_X_REQUESTED_WITH'] ?? '') !== 'XMLHttpRequest') {
		$headers[] = 'WWW-Authenticate: Basic realm="' . ($nc ? 'Nextcloud' : 'ownCloud') . '", charset="UTF-8"';
	}
	ocd_sabre_error(401, 'Sabre\\DAV\\Exception\\NotAuthenticated', $msg, $headers);
	exit();
}
$uid = ocd_current_user();

if ($base === null) {
	// /remote.php/dav/ root and other collections: not imitated beyond a 404
	ocd_dav_not_found('File not found: ' . ltrim($pathInfo, '/') . ' in \'root\'');
}
if ($urlUser !== null && $urlUser !== $uid) {
	ocd_dav_not_found('File with name ' . $urlUser . ' could not be located');
}
if ($urlUser === null) {
	$base = '/remote.php/webdav';
}

// normalise the path inside the user's files: no leading/trailing slash, no dot segments
$parts = [];
foreach (explode('/', $rel) as $seg) {
	if ($seg === '' || $seg === '.') {
		continue;
	}
	if ($seg === '..') {
		ocd_sabre_error(403, 'Sabre\\DAV\\Exception\\Forbidden', 'Invalid path');
		exit();
	}
	$parts[] = $seg;
}
$relPath = implode('/', $parts);

try {
	$st = ocd_q('SELECT numeric_id FROM *PREFIX*storages WHERE id = ?', ['home::' . $uid]);
	if (!$st) {
		ocd_dav_not_found('File with name /' . $relPath . ' could not be located');
	}
	$storage = (int)$st[0]['numeric_id'];
	$handler = 'ocd_dav_' . strtolower($method);
	if (!in_array($method, ['PROPFIND', 'GET', 'HEAD', 'PUT', 'MKCOL', 'DELETE', 'OPTIONS'], true)) {
		ocd_sabre_error(501, 'Sabre\\DAV\\Exception\\NotImplemented', 'There was no plugin in the system that was willing to handle this ' . $method . ' method.');
		exit();
	}
	$handler($uid, $storage, $relPath, $base);
} catch (OcdDbException $e) {
	ocd_log(4, 'webdav', $e->getMessage());
	ocd_sabre_error(500, 'OC\\DB\\Exception', 'Internal Server Error');
}
exit();

// ---------------------------------------------------------------- filecache helpers

function ocd_fc_path(string $rel): string {
	return $rel === '' ? 'files' : 'files/' . $rel;
}

function ocd_fc_get(int $storage, string $rel): ?array {
	$p = ocd_fc_path($rel);
	$r = ocd_q('SELECT * FROM *PREFIX*filecache WHERE storage = ? AND path_hash = ?', [$storage, md5($p)]);
	return $r ? $r[0] : null;
}

function ocd_fc_children(int $fileid): array {
	return ocd_q('SELECT * FROM *PREFIX*filecache WHERE parent = ? ORDER BY name', [$fileid]);
}

function ocd_mimetype(int $id): string {
	static $map = null;
	if ($map === null) {
		$map = [];
		foreach (ocd_q('SELECT id, mimetype FROM *PREFIX*mimetypes') as $r) {
			$map[(int)$r['id']] = $r['mimetype'];
		}
	}
	return $map[$id] ?? 'application/octet-stream';
}

function ocd_mimetype_id(string $mime): int {
	$r = ocd_q('SELECT id FROM *PREFIX*mimetypes WHERE mimetype = ?', [$mime]);
	if ($r) {
		return (int)$r[0]['id'];
	}
	ocd_exec('INSERT INTO *PREFIX*mimetypes (mimetype) VALUES (?)', [$mime]);
	$r = ocd_q('SELECT id FROM *PREFIX*mimetypes WHERE mimetype = ?', [$mime]);
	return (int)$r[0]['id'];
}

function ocd_is_dir_row(array $row): bool {
	return ocd_mimetype((int)$row['mimetype']) === 'httpd/unix-directory';
}

function ocd_href(string $base, string $rel, bool $dir): string {
	$h = $base . '/';
	if ($rel !== '') {
		$h .= implode('/', array_map('rawurlencode', explode('/', $rel)));
		if ($dir) {
			$h .= '/';
		}
	}
	return $h;
}

function ocd_httpdate(int $t): string {
	return gmdate('D, d M Y H:i:s', $t) . ' GMT';
}

function ocd_guess_mime(string $name): string {
	$ext = strtolower(pathinfo($name, PATHINFO_EXTENSION));
	$map = [
		'txt' => 'text/plain', 'md' => 'text/markdown', 'pdf' => 'application/pdf', 'png' => 'image/png',
		'jpg' => 'image/jpeg', 'jpeg' => 'image/jpeg', 'gif' => 'image/gif', 'mp4' => 'video/mp4',
		'odt' => 'application/vnd.oasis.opendocument.text', 'json' => 'application/json', 'html' => 'text/html',
		'csv' => 'text/csv', 'zip' => 'application/zip', 'mp3' => 'audio/mpeg', 'bin' => 'application/octet-stream',
	];
	return $map[$ext] ?? 'application/octet-stream';
}

// ---------------------------------------------------------------- PROPFIND

/** Requested properties as [[ns, name], …], or null for allprop. */
function ocd_requested_props(): ?array {
	$body = file_get_contents('php://input');
	if ($body === false || trim($body) === '') {
		return null;
	}
	$doc = new DOMDocument();
	if (!@$doc->loadXML($body, LIBXML_NONET)) {
		ocd_sabre_error(400, 'Sabre\\DAV\\Exception\\BadRequest', 'The request body had an invalid XML body. (message: "Start tag expected, \'<\' not found" on line 1, column 1)');
		exit();
	}
	$root = $doc->documentElement;
	$props = [];
	foreach ($root->childNodes as $c) {
		if (!($c instanceof DOMElement)) {
			continue;
		}
		if ($c->localName === 'allprop' || $c->localName === 'propname') {
			return null;
		}
		if ($c->localName === 'prop') {
			foreach ($c->childNodes as $p) {
				if ($p instanceof DOMElement) {
					$props[] = [(string)$p->namespaceURI, $p->localName];
				}
			}
		}
	}
	return $props;
}

function ocd_prop_value(array $row, string $ns, string $name, string $uid): ?array {
	$nc = ocd_is_nc();
	$dir = ocd_is_dir_row($row);
	$fileid = (int)$row['fileid'];
	$x = function ($s) {
		return htmlspecialchars((string)$s, ENT_XML1 | ENT_QUOTES);
	};
	if ($ns === 'DAV:') {
		switch ($name) {
			case 'getetag':
				return ['d:getetag', $x('"' . $row['etag'] . '"')];
			case 'getlastmodified':
				return ['d:getlastmodified', ocd_httpdate((int)$row['mtime'])];
			case 'resourcetype':
				return ['d:resourcetype', $dir ? '<d:collection/>' : ''];
			case 'getcontentlength':
				return $dir ? null : ['d:getcontentlength', (string)(int)$row['size']];
			case 'getcontenttype':
				return $dir ? null : ['d:getcontenttype', $x(ocd_mimetype((int)$row['mimetype']))];
			case 'quota-used-bytes':
				return $dir ? ['d:quota-used-bytes', (string)(int)$row['size']] : null;
			case 'quota-available-bytes':
				return $dir ? ['d:quota-available-bytes', '-3'] : null;
		}
		return null;
	}
	if ($ns === 'http://owncloud.org/ns') {
		switch ($name) {
			case 'id':
				return ['oc:id', $x(sprintf('%08d', $fileid) . ocd_cfg('instanceid', ''))];
			case 'fileid':
				return ['oc:fileid', (string)$fileid];
			case 'permissions':
				$p = $dir ? ($nc ? 'RGDNVCK' : 'RDNVCK') : ($nc ? 'RGDNVW' : 'RDNVW');
				return ['oc:permissions', $p];
			case 'size':
				return ['oc:size', (string)(int)$row['size']];
			case 'checksums':
				$c = trim((string)($row['checksum'] ?? ''));
				if ($dir || $c === '') {
					return null;
				}
				return ['oc:checksums', '<oc:checksum>' . $x($c) . '</oc:checksum>'];
			case 'data-fingerprint':
				return ['oc:data-fingerprint', $x(ocd_cfg('data-fingerprint', ''))];
			case 'owner-id':
				return ['oc:owner-id', $x($uid)];
			case 'owner-display-name':
				return ['oc:owner-display-name', $x(ocd_display_name($uid))];
			case 'share-types':
				return ['oc:share-types', ''];
		}
		return null;
	}
	if ($nc && $ns === 'http://nextcloud.org/ns') {
		switch ($name) {
			case 'creation_time':
				return ['nc:creation_time', '0'];
			case 'upload_time':
				return ['nc:upload_time', '0'];
			case 'has-preview':
				return ['nc:has-preview', 'false'];
		}
	}
	return null;
}

function ocd_prop_xml(string $tag, string $content): string {
	return $content === '' ? "<$tag/>" : "<$tag>$content</$tag>";
}

function ocd_propfind_response(array $row, string $href, ?array $requested, string $uid): string {
	$dir = ocd_is_dir_row($row);
	if ($requested === null) {
		$requested = $dir
			? [['DAV:', 'getlastmodified'], ['DAV:', 'resourcetype'], ['DAV:', 'quota-used-bytes'], ['DAV:', 'quota-available-bytes'], ['DAV:', 'getetag']]
			: [['DAV:', 'getlastmodified'], ['DAV:', 'getcontentlength'], ['DAV:', 'resourcetype'], ['DAV:', 'getetag'], ['DAV:', 'getcontenttype']];
	}
	$found = '';
	$missing = '';
	$known = ['DAV:' => 'd', 'http://owncloud.org/ns' => 'oc', 'http://sabredav.org/ns' => 's'];
	if (ocd_is_nc()) {
		$known['http://nextcloud.org/ns'] = 'nc';
	}
	$n = 0;
	foreach ($requested as [$ns, $name]) {
		$v = ocd_prop_value($row, $ns, $name, $uid);
		if ($v !== null) {
			$found .= ocd_prop_xml($v[0], $v[1]);
		} elseif (isset($known[$ns])) {
			$missing .= '<' . $known[$ns] . ':' . $name . '/>';
		} else {
			$n++;
			$missing .= '<x' . $n . ':' . $name . ' xmlns:x' . $n . '="' . htmlspecialchars($ns, ENT_XML1 | ENT_QUOTES) . '"/>';
		}
	}
	$out = '<d:response><d:href>' . htmlspecialchars($href, ENT_XML1) . '</d:href>';
	if ($found !== '') {
		$out .= '<d:propstat><d:prop>' . $found . '</d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat>';
	}
	if ($missing !== '') {
		$out .= '<d:propstat><d:prop>' . $missing . '</d:prop><d:status>HTTP/1.1 404 Not Found</d:status></d:propstat>';
	}
	return $out . '</d:response>';
}

function ocd_dav_propfind(string $uid, int $storage, string $rel, string $base): void {
	$row = ocd_fc_get($storage, $rel);
	if ($row === null) {
		ocd_dav_not_found('File with name /' . $rel . ' could not be located');
	}
	$requested = ocd_requested_props();
	$depth = strtolower(trim($_SERVER['HTTP_DEPTH'] ?? 'infinity'));
	$depth = ($depth === '0') ? 0 : 1; // infinity is treated as 1, as Sabre does by default
	$dir = ocd_is_dir_row($row);
	$xml = ocd_propfind_response($row, ocd_href($base, $rel, $dir), $requested, $uid);
	if ($dir && $depth === 1) {
		foreach (ocd_fc_children((int)$row['fileid']) as $child) {
			$crel = ($rel === '' ? '' : $rel . '/') . $child['name'];
			$xml .= ocd_propfind_response($child, ocd_href($base, $crel, ocd_is_dir_row($child)), $requested, $uid);
		}
	}
	$ns = 'xmlns:d="DAV:" xmlns:s="http://sabredav.org/ns" xmlns:oc="http://owncloud.org/ns"';
	if (ocd_is_nc()) {
		$ns .= ' xmlns:nc="http://nextcloud.org/ns"';
	}
	http_response_code(207);
	header('Content-Type: application/xml; charset=utf-8');
	header('DAV: 1, 3, extended-mkcol');
	header('Vary: Brief,Prefer');
	echo "<?xml version=\"1.0\"?>\n<d:multistatus $ns>" . $xml . "</d:multistatus>\n";
}

// ---------------------------------------------------------------- GET / HEAD

function ocd_dav_get(string $uid, int $storage, string $rel, string $base, bool $head = false): void {
	$row = ocd_fc_get($storage, $rel);
	if ($row === null) {
		ocd_dav_not_found('File with name /' . $rel . ' could not be located');
	}
	if (ocd_is_dir_row($row)) {
		if ($head) {
			http_response_code(200);
			return;
		}
		ocd_sabre_error(501, 'Sabre\\DAV\\Exception\\NotImplemented', 'GET is only implemented on File objects');
		exit();
	}
	$file = ocd_datadir() . '/' . $uid . '/files/' . $rel;
	if (!is_file($file)) {
		ocd_dav_not_found('File with name /' . $rel . ' could not be located');
	}
	header('Content-Type: ' . ocd_mimetype((int)$row['mimetype']));
	header('Content-Length: ' . filesize($file));
	header('ETag: "' . $row['etag'] . '"');
	header('OC-ETag: "' . $row['etag'] . '"');
	header('OC-FileId: ' . sprintf('%08d', (int)$row['fileid']) . ocd_cfg('instanceid', ''));
	header('Last-Modified: ' . ocd_httpdate((int)$row['mtime']));
	if (!$head) {
		readfile($file);
	}
}

function ocd_dav_head(string $uid, int $storage, string $rel, string $base): void {
	ocd_dav_get($uid, $storage, $rel, $base, true);
}

function ocd_dav_options(string $uid, int $storage, string $rel, string $base): void {
	header('DAV: 1, 3, extended-mkcol');
	header('Allow: OPTIONS, GET, HEAD, DELETE, PROPFIND, PUT, PROPPATCH, COPY, MOVE, REPORT');
	header('Content-Length: 0');
	http_response_code(200);
}

// ---------------------------------------------------------------- PUT / MKCOL

/** New etag for a changed node and every folder up to the home's files root; adjust sizes. */
function ocd_propagate(int $storage, string $rel, int $mtime, int $sizeDelta): void {
	$parts = $rel === '' ? [] : explode('/', $rel);
	while (true) {
		array_pop($parts);
		$prel = implode('/', $parts);
		$p = ocd_fc_get($storage, $prel);
		if ($p !== null) {
			ocd_exec('UPDATE *PREFIX*filecache SET etag = ?, size = size + ?, mtime = CASE WHEN mtime < ? THEN ? ELSE mtime END WHERE fileid = ?',
				[uniqid(), $sizeDelta, $mtime, $mtime, (int)$p['fileid']]);
		}
		if ($prel === '') {
			break;
		}
	}
	// and the home storage's root ('' path), as the real propagator does
	ocd_exec("UPDATE *PREFIX*filecache SET etag = ?, size = size + ?, mtime = CASE WHEN mtime < ? THEN ? ELSE mtime END WHERE storage = ? AND path_hash = ?",
		[uniqid(), $sizeDelta, $mtime, $mtime, $storage, md5('')]);
}

/**
 * As the real Updater's correctParentStorageMtime() after every update and removal: the direct
 * parent's storage_mtime becomes its folder's mtime on disk now (a file created, renamed into
 * place or moved away changed it), so the file cache keeps agreeing with the disk.
 */
function ocd_correct_parent_storage_mtime(string $uid, int $storage, string $rel): void {
	$parentRel = dirname($rel) === '.' ? '' : dirname($rel);
	$dir = ocd_datadir() . '/' . $uid . '/files' . ($parentRel === '' ? '' : '/' . $parentRel);
	clearstatcache();
	$mtime = @filemtime($dir);
	$parent = ocd_fc_get($storage, $parentRel);
	if ($mtime !== false && $parent !== null) {
		ocd_exec('UPDATE *PREFIX*filecache SET storage_mtime = ? WHERE fileid = ?', [$mtime, (int)$parent['fileid']]);
	}
}

function ocd_dav_put(string $uid, int $storage, string $rel, string $base): void {
	if ($rel === '') {
		ocd_sabre_error(405, 'Sabre\\DAV\\Exception\\MethodNotAllowed', 'The resource you tried to create already exists');
		exit();
	}
	$parentRel = dirname($rel) === '.' ? '' : dirname($rel);
	$parent = ocd_fc_get($storage, $parentRel);
	if ($parent === null || !ocd_is_dir_row($parent)) {
		ocd_dav_not_found('File with name /' . $parentRel . ' could not be located');
	}
	$existing = ocd_fc_get($storage, $rel);
	if ($existing !== null && ocd_is_dir_row($existing)) {
		ocd_sabre_error(405, 'Sabre\\DAV\\Exception\\MethodNotAllowed', 'The resource you tried to create already exists');
		exit();
	}
	$file = ocd_datadir() . '/' . $uid . '/files/' . $rel;
	$in = fopen('php://input', 'r');
	$tmp = $file . '.ocTransferId' . random_int(1000000, 9999999) . '.part';
	$out = @fopen($tmp, 'w');
	if ($out === false) {
		ocd_sabre_error(403, 'Sabre\\DAV\\Exception\\Forbidden', 'Could not write file contents');
		exit();
	}
	stream_copy_to_stream($in, $out);
	fclose($out);
	rename($tmp, $file);
	$mtimeAccepted = false;
	if (isset($_SERVER['HTTP_X_OC_MTIME']) && is_numeric($_SERVER['HTTP_X_OC_MTIME'])) {
		touch($file, (int)$_SERVER['HTTP_X_OC_MTIME']);
		$mtimeAccepted = true;
	}
	clearstatcache();
	$size = filesize($file);
	$mtime = filemtime($file);
	$etag = uniqid();
	$nc = ocd_is_nc();
	$checksum = $nc ? '' : 'SHA1:' . sha1_file($file) . ' MD5:' . md5_file($file) . ' ADLER32:' . hash_file('adler32', $file);
	$mime = ocd_guess_mime(basename($rel));
	$mimeId = ocd_mimetype_id($mime);
	$partId = ocd_mimetype_id(explode('/', $mime)[0]);
	$path = ocd_fc_path($rel);
	if ($existing === null) {
		ocd_exec('INSERT INTO *PREFIX*filecache (storage, path, path_hash, parent, name, mimetype, mimepart, size, mtime, storage_mtime, encrypted, unencrypted_size, etag, permissions, checksum) VALUES (?,?,?,?,?,?,?,?,?,?,0,0,?,?,?)',
			[$storage, $path, md5($path), (int)$parent['fileid'], basename($rel), $mimeId, $partId, $size, $mtime, $mtime, $etag, 27, $checksum]);
		$delta = $size;
		$code = 201;
	} else {
		ocd_exec('UPDATE *PREFIX*filecache SET size = ?, mtime = ?, storage_mtime = ?, etag = ?, checksum = ?, mimetype = ?, mimepart = ? WHERE fileid = ?',
			[$size, $mtime, $mtime, $etag, $checksum, $mimeId, $partId, (int)$existing['fileid']]);
		$delta = $size - (int)$existing['size'];
		$code = 204;
	}
	ocd_correct_parent_storage_mtime($uid, $storage, $rel);
	ocd_propagate($storage, $rel, $mtime, $delta);
	$row = ocd_fc_get($storage, $rel);
	http_response_code($code);
	header('OC-FileId: ' . sprintf('%08d', (int)$row['fileid']) . ocd_cfg('instanceid', ''));
	header('ETag: "' . $etag . '"');
	header('OC-ETag: "' . $etag . '"');
	if ($mtimeAccepted) {
		header('X-OC-MTime: accepted');
	}
	header('Content-Length: 0');
}

function ocd_dav_mkcol(string $uid, int $storage, string $rel, string $base): void {
	if ($rel === '' || ocd_fc_get($storage, $rel) !== null) {
		ocd_sabre_error(405, 'Sabre\\DAV\\Exception\\MethodNotAllowed', 'The resource you tried to create already exists');
		exit();
	}
	$parentRel = dirname($rel) === '.' ? '' : dirname($rel);
	$parent = ocd_fc_get($storage, $parentRel);
	if ($parent === null || !ocd_is_dir_row($parent)) {
		ocd_sabre_error(409, 'Sabre\\DAV\\Exception\\Conflict', 'Parent node does not exist');
		exit();
	}
	$dir = ocd_datadir() . '/' . $uid . '/files/' . $rel;
	if (!@mkdir($dir, 0755)) {
		ocd_sabre_error(403, 'Sabre\\DAV\\Exception\\Forbidden', '');
		exit();
	}
	clearstatcache();
	$mtime = filemtime($dir);
	$path = ocd_fc_path($rel);
	ocd_exec('INSERT INTO *PREFIX*filecache (storage, path, path_hash, parent, name, mimetype, mimepart, size, mtime, storage_mtime, encrypted, unencrypted_size, etag, permissions, checksum) VALUES (?,?,?,?,?,?,?,0,?,?,0,0,?,31,?)',
		[$storage, $path, md5($path), (int)$parent['fileid'], basename($rel), ocd_mimetype_id('httpd/unix-directory'), ocd_mimetype_id('httpd'), $mtime, $mtime, uniqid(), '']);
	ocd_correct_parent_storage_mtime($uid, $storage, $rel);
	ocd_propagate($storage, $rel, $mtime, 0);
	http_response_code(201);
	header('Content-Length: 0');
}

// ---------------------------------------------------------------- DELETE

/**
 * DELETE: the file or folder moves to <datadir>/<user>/files_trashbin/files/<name>.d<unix-ts>
 * (as observed); its cache rows (and its children's) are dropped, parents get new etags and sizes.
 * The trash bin's own cache rows and oc_files_trash are not imitated.
 */
function ocd_dav_delete(string $uid, int $storage, string $rel, string $base): void {
	if ($rel === '') {
		ocd_sabre_error(403, 'Sabre\\DAV\\Exception\\Forbidden', '');
		exit();
	}
	$row = ocd_fc_get($storage, $rel);
	if ($row === null) {
		ocd_dav_not_found('File with name /' . $rel . ' could not be located');
	}
	$src = ocd_datadir() . '/' . $uid . '/files/' . $rel;
	$trash = ocd_datadir() . '/' . $uid . '/files_trashbin/files';
	if (!is_dir($trash)) {
		@mkdir($trash, 0755, true);
	}
	if (file_exists($src) && !@rename($src, $trash . '/' . basename($rel) . '.d' . time())) {
		ocd_sabre_error(403, 'Sabre\\DAV\\Exception\\Forbidden', '');
		exit();
	}
	$path = ocd_fc_path($rel);
	$n = strlen($path) + 1;
	ocd_exec('DELETE FROM *PREFIX*filecache WHERE storage = ? AND (path = ? OR SUBSTR(path, 1, ' . $n . ') = ?)', [$storage, $path, $path . '/']);
	ocd_correct_parent_storage_mtime($uid, $storage, $rel);
	ocd_propagate($storage, $rel, time(), -(int)$row['size']);
	http_response_code(204);
}
