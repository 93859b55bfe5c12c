<?php
// Sets no $CONFIG: skipped, as ownCloud skips it.
$unrelated = 1;
