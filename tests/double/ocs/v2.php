<?php
/**
 * TEST DOUBLE — NOT ownCloud, NOT Nextcloud (see tests/double/README.md).
 * ocs/v2.php of the ocmigrate test double; the code is in lib/ocs.php.
 */
require_once __DIR__ . '/../lib/ocs.php';
ocd_ocs_main(2);
