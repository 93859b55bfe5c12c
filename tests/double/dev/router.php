<?php
// TEST DOUBLE developer helper: router for PHP's built-in server (production uses apache + mod_php).
$uri = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
if (preg_match('#^(/(?:ocs/v[12]|remote|index|status)\.php)(/.*)?$#', $uri, $m)) {
	$_SERVER['SCRIPT_NAME'] = $m[1];
	$_SERVER['PATH_INFO'] = rawurldecode($m[2] ?? '');
	chdir($_SERVER['DOCUMENT_ROOT'] . dirname($m[1]));
	require $_SERVER['DOCUMENT_ROOT'] . $m[1];
	return true;
}
if ($uri === '/') {
	$_SERVER['SCRIPT_NAME'] = '/index.php';
	require $_SERVER['DOCUMENT_ROOT'] . '/index.php';
	return true;
}
return false;
