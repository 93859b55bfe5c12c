// ocmigrate's typed, exact text of a PHP value: the same text as Rust's value::typed_dump, so
// that PHP and Rust fingerprint a config value alike (and tests compare values byte for byte).
function ocm_dump($v) {
    if (is_null($v)) return 'N';
    if (is_bool($v)) return $v ? 'T' : 'F';
    if (is_int($v)) return 'i' . $v;
    if (is_float($v)) return 'f' . bin2hex(pack('E', $v));
    if (is_string($v)) return 's' . bin2hex($v);
    $o = 'a[';
    foreach ($v as $k => $x) {
        $o .= (is_int($k) ? 'i' . $k : 's' . bin2hex($k)) . '=' . ocm_dump($x) . ',';
    }
    return $o . ']';
}
