package org.segengine.notices;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import seg.Segmentation.ChangeNotice;
import seg.Segmentation.NoticeKind;

/**
 * Builds ChangeNotices the way the C++ bridge does (seg::bridge::Coalesce in
 * coprocessor-bridge/internal/bridge.cc): one notice per distinct row in
 * first-seen order; newest_event_time_ms = max cell timestamp, event_count =
 * number of cells (saturating at 2^32-1), acked_at_ms = when the store
 * acknowledged the write (here: the newest WAL key write time of the row's
 * edits), kind = NOTICE_WRITE. For the same input the serialized bytes equal
 * the C++ bridge's (proto3 writes fields in number order and omits
 * defaults, in both languages).
 */
public final class Notices {
  private Notices() {}

  /**
   * Accumulates the cells of one shipment, per row. Not thread-safe. A cell
   * of a row already seen allocates nothing: the lookup key wraps the
   * cell's own bytes, and a row key is copied once, when first seen.
   */
  public static final class Builder {
    /** A row key as (array, offset, length); hashed and compared by content. */
    private static final class RowKey {
      byte[] array;
      int offset;
      int length;
      int hash;

      RowKey set(byte[] a, int off, int len) {
        array = a;
        offset = off;
        length = len;
        int h = 1;
        for (int i = off; i < off + len; i++) h = 31 * h + a[i];
        hash = h;
        return this;
      }

      @Override
      public int hashCode() {
        return hash;
      }

      @Override
      public boolean equals(Object o) {
        if (!(o instanceof RowKey k) || k.length != length) return false;
        return Arrays.equals(array, offset, offset + length, k.array, k.offset, k.offset + length);
      }
    }

    private static final class Row {
      final byte[] key;
      long newestMs = Long.MIN_VALUE;
      long ackedAtMs = Long.MIN_VALUE;
      long count;

      Row(byte[] key) {
        this.key = key;
      }
    }

    private final Map<RowKey, Row> rows = new LinkedHashMap<>();
    private final RowKey probe = new RowKey();

    /** One cell of `row` with timestamp `cellTsMs`, written at `writeTimeMs`. */
    public void add(byte[] row, long cellTsMs, long writeTimeMs) {
      add(row, 0, row.length, cellTsMs, writeTimeMs);
    }

    /** The same for a row key at array[offset, offset + length) (a Cell's row). */
    public void add(byte[] array, int offset, int length, long cellTsMs, long writeTimeMs) {
      if (length == 0) return;
      Row r = rows.get(probe.set(array, offset, length));
      if (r == null) {
        byte[] key = Arrays.copyOfRange(array, offset, offset + length);
        r = new Row(key);
        rows.put(new RowKey().set(key, 0, length), r);
      }
      r.newestMs = Math.max(r.newestMs, cellTsMs);
      r.ackedAtMs = Math.max(r.ackedAtMs, writeTimeMs);
      r.count++;
    }

    public boolean isEmpty() {
      return rows.isEmpty();
    }

    /** (row key, notice) pairs in first-seen order. */
    public List<Map.Entry<byte[], ChangeNotice>> build() {
      List<Map.Entry<byte[], ChangeNotice>> out = new ArrayList<>(rows.size());
      for (Row r : rows.values()) {
        // The key is this builder's own copy, never changed: wrapped, not copied again.
        out.add(Map.entry(r.key, notice(com.google.protobuf.UnsafeByteOperations.unsafeWrap(r.key),
            r.newestMs, r.ackedAtMs, r.count)));
      }
      return out;
    }
  }

  /** The notice for one row (user id = the row key's bytes). */
  public static ChangeNotice notice(byte[] row, long newestMs, long ackedAtMs, long cellCount) {
    return notice(com.google.protobuf.ByteString.copyFrom(row), newestMs, ackedAtMs, cellCount);
  }

  private static ChangeNotice notice(com.google.protobuf.ByteString row, long newestMs,
      long ackedAtMs, long cellCount) {
    long count = Math.min(Math.max(cellCount, 0), 0xFFFFFFFFL);
    return ChangeNotice.newBuilder()
        // user_id is a proto3 string: the row key is the user id's UTF-8.
        .setUserIdBytes(row)
        .setNewestEventTimeMs(newestMs)
        .setAckedAtMs(ackedAtMs)
        .setEventCount((int) count)
        .setKind(NoticeKind.NOTICE_WRITE)
        .build();
  }
}
