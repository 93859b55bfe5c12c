<?php
/**
 * TEST DOUBLE — NOT ownCloud, NOT Nextcloud (see tests/double/README.md).
 * index.php of the ocmigrate test double: trusted-domain check, maintenance page (503,
 * Retry-After: 120), upgrade page when the code and the DB disagree, otherwise a redirect to
 * /index.php/login and a login page with the flavor's title.
 */
require_once __DIR__ . '/lib/double.php';

ocd_web_init('index.php');

$nc = ocd_is_nc();
if (!ocd_installed()) {
	header('Content-Type: text/html; charset=utf-8');
	echo ocd_guest_page($nc ? 'Nextcloud' : 'ownCloud', "<h2>Create an admin account</h2>\n<p>Installation (not supported by the test double)</p>\n");
	exit();
}
if (ocd_maintenance()) {
	ocd_maintenance_page();
	exit();
}
try {
	$upgrade = ocd_needs_upgrade();
} catch (OcdHintException $e) {
	http_response_code(500);
	ocd_log(3, 'index', $e->getMessage());
	header('Content-Type: text/html; charset=utf-8');
	echo ocd_guest_page(ocd_product(), '<ul><li class="error">' . ocd_html_escape($e->getMessage()) . "</li></ul>\n");
	exit();
} catch (Throwable $e) {
	http_response_code(503);
	ocd_log(4, 'index', $e->getMessage());
	header('Content-Type: text/html; charset=utf-8');
	echo ocd_guest_page(ocd_product(), "<ul><li class=\"error\">Internal Server Error</li></ul>\n");
	exit();
}
if ($upgrade) {
	http_response_code(503);
	header('Retry-After: 120');
	header('Content-Type: text/html; charset=utf-8');
	$p = ocd_product();
	echo ocd_guest_page($p, "<div class=\"update\">\n<h2 class=\"title\">Update needed</h2>\n"
		. "<p>Please use the command line updater because updating via the browser is disabled in your config.php.</p>\n</div>\n");
	exit();
}

$path = rtrim(ocd_path_info(), '/');
if ($path === '') {
	$proto = (!empty($_SERVER['HTTPS']) && $_SERVER['HTTPS'] !== 'off') ? 'https' : 'http';
	http_response_code(302);
	header('Location: ' . $proto . '://' . ocd_host() . '/index.php/login');
	exit();
}
if ($path === '/login') {
	header('Content-Type: text/html; charset=utf-8');
	if ($nc) {
		echo ocd_guest_page('Login – Nextcloud', "<main>\n<h2>Log in to Nextcloud</h2>\n<form method=\"post\" name=\"login\"><input type=\"text\" name=\"user\" id=\"user\"/><input type=\"password\" name=\"password\" id=\"password\"/></form>\n</main>\n");
	} else {
		echo ocd_guest_page('ownCloud', "<form method=\"post\" name=\"login\">\n<fieldset>\n<input type=\"text\" name=\"user\" id=\"user\" placeholder=\"Username or email\"/>\n<input type=\"password\" name=\"password\" id=\"password\" placeholder=\"Password\"/>\n<button type=\"submit\" id=\"submit\" class=\"login-button\">Login</button>\n</fieldset>\n</form>\n");
	}
	exit();
}
http_response_code(404);
header('Content-Type: text/html; charset=utf-8');
echo ocd_guest_page(ocd_product(), "<ul><li class=\"error\">Page not found</li></ul>\n");
