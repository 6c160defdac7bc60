// fmt.c: the non-allocating printf-like formatter (fmt.h).
#define _GNU_SOURCE
#include "fmt.h"

#include <stdint.h>
#include <string.h>
#include <sys/types.h>

struct out {
  char *buf;
  size_t n, len;
};

static void put(struct out *o, char c) {
  if (o->len + 1 < o->n) o->buf[o->len] = c;
  o->len++;
}

static void put_num(struct out *o, unsigned long long v, int base, int neg,
                    int width, char pad) {
  char tmp[24];
  int i = 0;
  do {
    tmp[i++] = "0123456789abcdef"[v % (unsigned)base];
    v /= (unsigned)base;
  } while (v);
  if (neg) {
    if (pad == '0') put(o, '-');
    width--;
  }
  for (int w = i; w < width; w++) put(o, pad);
  if (neg && pad != '0') put(o, '-');
  while (i) put(o, tmp[--i]);
}

size_t fmt_vformat(char *buf, size_t n, const char *fmt, va_list ap) {
  struct out o = {buf, n, 0};
  for (const char *f = fmt; *f; f++) {
    if (*f != '%') {
      put(&o, *f);
      continue;
    }
    f++;
    char pad = ' ';
    int width = 0, lng = 0, sz = 0, prec = -1;
    if (*f == '0') pad = '0', f++;
    while (*f >= '0' && *f <= '9') width = width * 10 + (*f++ - '0');
    if (*f == '.') {
      f++;
      if (*f == '*') {
        prec = va_arg(ap, int);
        f++;
      } else {
        for (prec = 0; *f >= '0' && *f <= '9'; f++) prec = prec * 10 + (*f - '0');
      }
    }
    while (*f == 'l') lng++, f++;
    if (*f == 'z') sz = 1, f++;
    switch (*f) {
    case 's': {
      const char *s = va_arg(ap, const char *);
      if (!s) s = "(null)";
      size_t sl = prec >= 0 ? strnlen(s, (size_t)prec) : strlen(s);
      for (size_t w = sl; w < (size_t)width; w++) put(&o, ' ');
      for (size_t i = 0; i < sl; i++) put(&o, s[i]);
      break;
    }
    case 'c': put(&o, (char)va_arg(ap, int)); break;
    case 'd': {
      long long v = sz ? (long long)va_arg(ap, ssize_t)
                  : lng ? (lng > 1 ? va_arg(ap, long long)
                                   : (long long)va_arg(ap, long))
                        : (long long)va_arg(ap, int);
      unsigned long long m = v < 0 ? 0ull - (unsigned long long)v
                                   : (unsigned long long)v;
      put_num(&o, m, 10, v < 0, width, pad);
      break;
    }
    case 'u':
    case 'o':
    case 'x': {
      unsigned long long v =
          sz ? (unsigned long long)va_arg(ap, size_t)
          : lng ? (lng > 1 ? va_arg(ap, unsigned long long)
                           : (unsigned long long)va_arg(ap, unsigned long))
                : (unsigned long long)va_arg(ap, unsigned);
      put_num(&o, v, *f == 'x' ? 16 : *f == 'o' ? 8 : 10, 0, width, pad);
      break;
    }
    case 'p':
      put(&o, '0'), put(&o, 'x');
      put_num(&o, (uintptr_t)va_arg(ap, void *), 16, 0, width, pad);
      break;
    case '%': put(&o, '%'); break;
    case 0: f--; break;
    default: put(&o, '%'), put(&o, *f); break;
    }
  }
  if (n) buf[o.len < n ? o.len : n - 1] = 0;
  return o.len < n ? o.len : (n ? n - 1 : 0);
}

size_t fmt_escape(char *buf, size_t n, const char *src, size_t len) {
  size_t o = 0;
  if (!n) return 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)src[i];
    if (c >= 0x20 && c != 0x7f) {
      if (o + 1 >= n) break;
      buf[o++] = (char)c;
      continue;
    }
    if (o + 4 >= n) break;
    buf[o++] = '\\';
    buf[o++] = 'x';
    buf[o++] = "0123456789abcdef"[c >> 4];
    buf[o++] = "0123456789abcdef"[c & 15];
  }
  buf[o] = 0;
  return o;
}

size_t fmt_format(char *buf, size_t n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  size_t r = fmt_vformat(buf, n, fmt, ap);
  va_end(ap);
  return r;
}

void fmt_size(char *out, size_t outlen, uint64_t n) {
  if (n && n % ((uint64_t)1 << 30) == 0)
    fmt_format(out, outlen, "%llu GiB", (unsigned long long)(n >> 30));
  else if (n && n % ((uint64_t)1 << 20) == 0)
    fmt_format(out, outlen, "%llu MiB", (unsigned long long)(n >> 20));
  else
    fmt_format(out, outlen, "%llu KiB", (unsigned long long)(n >> 10));
}
