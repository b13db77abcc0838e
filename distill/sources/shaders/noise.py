"""Noise shaders: fBm clouds, ridged multifractal, turbulence, marble, wood, domain warping,
noise-steered stripes and contour maps."""

SHADERS: dict[str, str] = {
    "fbm_clouds": """
vec3 shade(vec2 p) {
    float n = fbm(p * mix(0.8, 3.0, A.x) + OFF, 5);
    n = clamp((n - 0.5) * mix(1.5, 4.0, A.y) + 0.5, 0.0, 1.0);
    return pal(n * mix(0.5, 1.5, A.z));
}
""",
    "ridged_fbm": """
vec3 shade(vec2 p) {
    float n = ridged(p * mix(0.6, 2.2, A.x) + OFF, 5);
    return pal(pow(n, mix(0.7, 2.5, A.y)) * mix(0.6, 1.4, A.z));
}
""",
    "turbulence": """
vec3 shade(vec2 p) {
    vec2 q = p * mix(0.8, 2.5, A.x) + OFF;
    float t = 0.0, a = 0.5;
    for (int i = 0; i < 3; i++) {
        t += a * abs(gnoise(q) * 2.0 - 1.0);
        q = rot(0.7) * q * 2.03; a *= 0.5;
    }
    return mix(pal(0.0), pal2(1.0), clamp(t * mix(1.0, 3.0, A.y), 0.0, 1.0));
}
""",
    "marble": """
vec3 shade(vec2 p) {
    float n = fbm(p * mix(0.6, 2.5, A.x) + OFF, 5);
    float v = sin(p.x * mix(2.0, 10.0, A.y) + n * mix(2.0, 12.0, A.z));
    return pal(pow(0.5 + 0.5 * v, mix(0.3, 3.0, A.w)));
}
""",
    "wood": """
vec3 shade(vec2 p) {
    float r = length((p - (A.xy - 0.5) * 2.0) * vec2(1.0, mix(0.2, 1.0, B.x)));
    r = r * mix(2.0, 8.0, A.z) + fbm(p * 1.5 + OFF, 4) * mix(1.0, 6.0, A.w);
    float v = fract(r);
    return mix(pal(0.15), pal(0.55), pow(v, mix(0.3, 2.0, B.y)));
}
""",
    "domain_warp": """
vec3 shade(vec2 p) {
    vec2 q = p * mix(0.6, 2.0, A.x) + OFF;
    float k = mix(1.0, 4.0, A.y);
    vec2 w1 = vec2(fbm(q, 4), fbm(q + vec2(5.2, 1.3), 4));
    vec2 w2 = vec2(fbm(q + k * w1 + vec2(1.7, 9.2), 4), fbm(q + k * w1 + vec2(8.3, 2.8), 4));
    float f = fbm(q + k * w2, 4);
    return mix(pal(f * mix(0.8, 2.0, A.w)), pal2(length(w1)), clamp(length(w2) * A.z, 0.0, 1.0));
}
""",
    "flow_stripes": """
vec3 shade(vec2 p) {
    float a = fbm(p * mix(0.6, 2.0, A.x) + OFF, 3) * TAU * mix(1.0, 3.0, A.y);
    float v = sin(dot(p, vec2(cos(a), sin(a))) * mix(6.0, 25.0, A.z));
    return mix(pal(0.0), pal(0.5), smoothstep(-0.3, 0.3, v));
}
""",
    "contours": """
vec3 shade(vec2 p) {
    float n = fbm(p * mix(0.6, 2.5, A.x) + OFF, 4);
    float levels = mix(3.0, 10.0, A.y);
    float band = fract(n * levels);
    float line = smoothstep(0.0, mix(0.05, 0.3, A.z), min(band, 1.0 - band));
    return pal(floor(n * levels) / levels) * mix(1.0, line, step(0.3, A.w));
}
""",
}
