<?php
$CONFIG = array('logtimezone' => 'hidden files are not globbed');
