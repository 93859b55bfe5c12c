<?php
/**
 * TEST DOUBLE — NOT ownCloud, NOT Nextcloud (see tests/double/README.md).
 * status.php of the ocmigrate test double: 200 application/json with the flavor's exact fields
 * and order, in and out of maintenance mode; 500 (and a FATAL log line, app "remote") when the
 * database cannot be read.
 */
require_once __DIR__ . '/lib/double.php';

ocd_web_init('status.php');
try {
	$values = ocd_status_values();
} catch (Throwable $e) {
	http_response_code(500);
	ocd_log(4, 'remote', $e->getMessage());
	exit();
}
header('Access-Control-Allow-Origin: *');
header('Content-Type: application/json');
echo json_encode($values);
