<?php
/* Hand-written by an admin.
   Block comment with 'quotes' and "double quotes" and ?> inside. */
# hash comment
// slash comment ?> ends the comment but not the code
$CONFIG = [
  'instanceid' => "oc" . 'abc' . 123,        // concatenation of literals
  'trusted_domains' => [ 'cloud.example.org', "cloud.example.org:8443", ],
  'session_lifetime' => 60 * 60 * 24,        # from config.sample.php
  'remember_login_cookie_lifetime' => 60*60*24*15,
  'half' => 7 / 2,
  'exact' => 8 / 2,
  'mod' => -7 % 3,
  'sum' => (1 + 2) - -3,
  'neg' => -(5),
  'maintenance' => FALSE,
  'installed' => True,
  'nothing' => NULL,
  'escapes' => "tab\there\nnl \\ back \$dollar \"quote\" \x41\x4a \101 \u{1F600} \u{e9} \e\v\f \q \{ $ {",
  'single' => 'it\'s a \\ backslash and a \n literal and \q',
  'empty' => [],
  'nested' => [ 'a' => [ 'b' => [ 'c' => [ 1, 2, [ 3 ] ] ] ] ],
  'implicit' => [ 'x', 5 => 'five', 'six', '10' => 'ten', 'eleven', '07' => 'str', 'twelve' ],
  'dup' => [ 'k' => 1, 'j' => 2, 'k' => 3 ],
  'keys' => [ true => 't', false => 'f', null => 'n', 2.9 => 'float' ],
  ARRAY('old') => 'syntax',
  "multi
line" => 'string',
];
$CONFIG['extra'] = 'added later';
$CONFIG['deep']['er'][] = 'auto';
$CONFIG['deep']['er'][] = 'auto2';
$other = array(1, 2, 3,);
?>
