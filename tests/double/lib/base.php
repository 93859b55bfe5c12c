<?php
/**
 * TEST DOUBLE — NOT ownCloud, NOT Nextcloud (see tests/double/README.md).
 * The PHP version check every entry point of the double runs first, written like the real
 * releases' checks (ownCloud's lib/base.php, Nextcloud's lib/versioncheck.php) so a tool can read
 * the bounds from the code. The double accepts PHP 7.4 up to 8.5 for both flavors: the real
 * ownCloud 10.15 stops at 8.0 and Nextcloud 33 starts at 8.2, but the lab runs Debian 12's PHP 8.2.
 */
if (PHP_VERSION_ID < 70400) {
	http_response_code(500);
	echo 'This version of the test double requires at least PHP 7.4.0<br/>';
	echo 'You are currently running ' . PHP_VERSION . '. Please update your PHP version.';
	exit(1);
}
if (PHP_VERSION_ID >= 80600) {
	http_response_code(500);
	echo 'This version of the test double requires PHP 8.5 or lower.<br/>';
	echo 'You are currently running ' . PHP_VERSION . '. Please update your PHP version.';
	exit(1);
}
