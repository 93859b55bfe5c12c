<?php
/**
 * TEST DOUBLE — NOT ownCloud, NOT Nextcloud (see tests/double/README.md).
 * The OCS API of the ocmigrate test double, shared by ocs/v1.php and ocs/v2.php:
 * /cloud/user, /cloud/capabilities; 503 "Service unavailable" in maintenance or when an upgrade
 * is pending; JSON with ?format=json (or Accept: application/json), XML otherwise.
 */
require_once __DIR__ . '/double.php';

function ocd_ocs_format(): string {
	$f = $_GET['format'] ?? '';
	if ($f === 'json' || $f === 'xml') {
		return $f;
	}
	if (stripos($_SERVER['HTTP_ACCEPT'] ?? '', 'application/json') !== false) {
		return 'json';
	}
	return 'xml';
}

function ocd_ocs_xml_value(XMLWriter $w, $data): void {
	foreach ($data as $k => $v) {
		$k = is_int($k) ? 'element' : (string)$k;
		if (is_array($v)) {
			$w->startElement($k);
			ocd_ocs_xml_value($w, $v);
			$w->endElement();
		} else {
			if (is_bool($v)) {
				$v = $v ? '1' : '';
			}
			$w->writeElement($k, $v === null ? '' : (string)$v);
		}
	}
}

/**
 * Send an OCS answer. $code is the OCS status (100 = ok); v2 maps 100 → 200 and sends the HTTP
 * status for 2xx–5xx codes; v1 answers HTTP 200 except for 401/503 sent by the server itself.
 */
function ocd_ocs_respond(int $version, int $code, string $message, $data, bool $withItems, ?int $http = null): void {
	$meta = ['status' => $code === 100 ? 'ok' : 'failure', 'statuscode' => $code, 'message' => $message];
	if ($version === 2) {
		$mapped = $code === 100 ? 200 : $code;
		$meta['statuscode'] = $mapped;
		if ($http === null) {
			$http = ($mapped >= 200 && $mapped < 600) ? $mapped : 400;
		}
	}
	if ($withItems) {
		$meta['totalitems'] = '';
		$meta['itemsperpage'] = '';
	}
	http_response_code($http ?? 200);
	if (ocd_ocs_format() === 'json') {
		header('Content-Type: application/json; charset=utf-8');
		echo json_encode(['ocs' => ['meta' => $meta, 'data' => $data === null ? [] : $data]]);
		return;
	}
	header('Content-Type: text/xml; charset=UTF-8');
	$w = new XMLWriter();
	$w->openMemory();
	$w->setIndent(true);
	$w->setIndentString(' ');
	$w->startDocument();
	$w->startElement('ocs');
	$w->startElement('meta');
	ocd_ocs_xml_value($w, $meta);
	$w->endElement();
	$w->startElement('data');
	if (is_array($data)) {
		ocd_ocs_xml_value($w, $data);
	}
	$w->endElement();
	$w->endElement();
	$w->endDocument();
	echo $w->outputMemory(true);
}

function ocd_ocs_main(int $version): void {
	ocd_web_init('ocs/v' . $version . '.php');
	$nc = ocd_is_nc();
	try {
		$upgrade = ocd_needs_upgrade();
	} catch (Throwable $e) {
		ocd_log(4, 'ocs', $e->getMessage());
		$upgrade = true;
	}
	if ($upgrade || ocd_maintenance() || (!$nc && ocd_cfg('singleuser', false))) {
		if ($nc) {
			header('X-Nextcloud-Maintenance-Mode: 1');
		}
		ocd_ocs_respond($version, 503, 'Service unavailable', null, false, 503);
		return;
	}
	$path = rtrim(ocd_path_info(), '/');
	$items = !$nc || $version === 1;
	$public = $nc && $path === '/cloud/capabilities';
	$auth = ocd_basic_auth();
	if ($auth !== 'ok' && !$public) {
		ocd_ocs_respond($version, 997, 'Current user is not logged in', null, $items, 401);
		return;
	}
	$uid = ocd_current_user();
	$v = ocd_version_info();
	if ($path === '/cloud/user') {
		$dn = ocd_display_name($uid);
		if ($nc) {
			$data = [
				'enabled' => true, 'storageLocation' => ocd_datadir() . '/' . $uid, 'id' => $uid,
				'lastLogin' => 0, 'backend' => 'Database', 'subadmin' => [],
				'quota' => ['free' => -3, 'used' => 0, 'total' => -3, 'relative' => 0, 'quota' => -3],
				'email' => ocd_email($uid), 'displayname' => $dn, 'display-name' => $dn,
				'phone' => '', 'address' => '', 'website' => '', 'twitter' => '', 'groups' => [],
				'language' => 'en', 'locale' => '',
			];
		} else {
			$data = ['id' => $uid, 'display-name' => $dn, 'email' => ocd_email($uid), 'language' => 'en'];
		}
		ocd_ocs_respond($version, 100, 'OK', $data, $items);
		return;
	}
	if ($path === '/cloud/capabilities') {
		$p = $v['parts'];
		if ($nc) {
			$data = [
				'version' => ['major' => $p[0], 'minor' => $p[1], 'micro' => $p[2], 'string' => $v['versionstring'], 'edition' => $v['edition'], 'extendedSupport' => false],
				'capabilities' => [
					'core' => ['pollinterval' => 60, 'webdav-root' => 'remote.php/webdav', 'reference-api' => true, 'reference-regex' => '(\\s|\\n|^)(https?:\\/\\/)((?:[-A-Z0-9+_]+\\.)+[-A-Z]+(?:\\/[-A-Z0-9+&@#%?=~_|!:,.;()]*)*)(\\s|\\n|$)', 'mod-rewrite-working' => false],
					'dav' => ['chunking' => '1.0', 'public_shares_chunking' => true],
					'files' => ['bigfilechunking' => true, 'blacklisted_files' => ['.htaccess']],
				],
			];
		} else {
			$status = ocd_status_values();
			$status['hostname'] = gethostname();
			$data = [
				'version' => ['major' => $p[0], 'minor' => $p[1], 'micro' => $p[2], 'string' => $v['versionstring'], 'edition' => $v['edition'], 'product' => 'ownCloud'],
				'capabilities' => [
					'core' => ['pollinterval' => (int)ocd_cfg('pollinterval', 30000), 'webdav-root' => 'remote.php/webdav', 'status' => $status, 'support-url-signing' => true],
					'dav' => ['chunking' => '1.0', 'reports' => ['search-files'], 'trashbin' => '1.0'],
					'files' => ['privateLinks' => true, 'bigfilechunking' => true, 'blacklisted_files' => ['.htaccess'], 'favorites' => true],
				],
			];
		}
		ocd_ocs_respond($version, 100, 'OK', $data, $items);
		return;
	}
	ocd_ocs_respond($version, 998, 'Invalid query, please check the syntax. API specifications are here: http://www.freedesktop.org/wiki/Specifications/open-collaboration-services.', null, $items, $version === 2 ? 404 : 200);
}
