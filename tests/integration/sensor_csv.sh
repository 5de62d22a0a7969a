#!/bin/bash
# sensor_csv.sh - the generated CSV of the standardisation tests (sourced, not run), shared so
# that macc-sim's and the daemons' tests learn from the same rows.
#
# sensor_csv DIR: DIR/train.csv (a header row, then 1000 rows) and DIR/test.csv (200 rows) of
# sensor-like readings: 8 features, f0 around 20 (noise only) and f1..f7 around 0.01 carrying the
# class (3 classes); a deterministic LCG, z ~ N(0, 1) roughly (the sum of four uniforms).
sensor_csv() {
	awk -v dir="$1" 'BEGIN {
		s = 11
		print "f0,f1,f2,f3,f4,f5,f6,f7,label" > (dir "/train.csv")
		for (i = 0; i < 1200; i++) {
			s = (s * 1103515245 + 12345) % 2147483648
			c = s % 3
			line = ""
			for (k = 0; k < 8; k++) {
				u = 0
				for (r = 0; r < 4; r++) {
					s = (s * 1103515245 + 12345) % 2147483648
					u += s / 2147483648
				}
				z = (u - 2) * 1.732
				if (k == 0) {
					v = 20 + 2 * z
				} else {
					v = 0.01 * (1 + 0.6 * ((k % 3) == c)) + 0.004 * z
				}
				line = line sprintf("%.5f,", v)
			}
			print line c > (dir "/" (i < 1000 ? "train.csv" : "test.csv"))
		}
	}'
}
